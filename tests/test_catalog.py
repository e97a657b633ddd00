"""Catalogue CSV (spec §1): validation names file, line, column and reason; all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dialbot.catalog import CatalogErrors, import_catalog, parse_price, read_catalog
from dialbot.db.catalogue import list_services, service_history
from dialbot.db.models import Service, ServiceVersion, Sp
from dialbot.db.runs import create_run, get_run
from dialbot.errors import CatalogError

HEADER = (
    "sp_code,sp_name,sp_hotline,service_code,service_name,access_number,billing,price,"
    "subscribe_cmd,cancel_cmd,use_cmd,region"
)
GOOD = f"""{HEADER}
901001,星河科技,4008001001,XHXH,星河笑话,1065800101,monthly,5.00,DG,TD,XH,
901001,星河科技,4008001001,XHTQ,星河天气,1065800102,per_use,0.1,TQ,,,北京
901002,云端信息,,YDZX,云端资讯,1065800201,monthly,3,DY,QX,,
"""


def write(tmp_path: Path, text: str, name: str = "catalog.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def count(session_factory: sessionmaker[Session], model: type) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_good_file_imports_every_service(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    result = import_catalog(session_factory, write(tmp_path, GOOD))
    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    services = {s.service_code: s for s in list_services(session_factory)}
    assert set(services) == {"XHXH", "XHTQ", "YDZX"}
    assert services["XHXH"].price_fen == 500
    assert services["XHTQ"].price_fen == 10
    assert services["YDZX"].price_fen == 300
    assert services["XHTQ"].cancel_cmd is None
    assert services["XHTQ"].region == "北京"
    assert services["XHXH"].sp_hotline == "4008001001"
    assert services["YDZX"].sp_hotline is None
    assert all(s.version == 1 and s.version_id is not None for s in services.values())


def test_bom_and_any_column_order_and_unknown_columns(tmp_path: Path) -> None:
    text = (
        "price,billing,service_name,service_code,sp_name,sp_code,access_number,"
        "subscribe_cmd,cancel_cmd,remark\n"
        "5.00,monthly,星河笑话,XHXH,星河科技,901001,1065800101,DG,TD,anything\n"
    )
    parsed = read_catalog(write(tmp_path, text, bom=True))
    assert [e.price_fen for e in parsed.entries] == [500]
    assert parsed.entries[0].sp_code == "901001"  # the BOM did not stick to the first header
    assert len(parsed.warnings) == 1
    assert "column remark" in parsed.warnings[0] and "line 1" in parsed.warnings[0]


def problems_of(tmp_path: Path, text: str) -> list[CatalogError]:
    with pytest.raises(CatalogError) as info:
        read_catalog(write(tmp_path, text))
    err = info.value
    return err.problems if isinstance(err, CatalogErrors) else [err]


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("901001,星河科技,,X1,笑话,10658001O1,monthly,5,DG,TD,,", "access_number", "digits"),
        ("901001,星河科技,,X1,笑话,1065 800101,monthly,5,DG,TD,,", "access_number", "digits"),
        ("901001,星河科技,,X1,笑话,1065800101,weekly,5,DG,TD,,", "billing", "monthly, per_use"),
        ("901001,星河科技,,X1,笑话,1065800101,monthly,5.001,DG,TD,,", "price", "two decimals"),
        ("901001,星河科技,,X1,笑话,1065800101,monthly,-5,DG,TD,,", "price", "price in yuan"),
        ("901001,星河科技,,X1,笑话,1065800101,monthly,5元,DG,TD,,", "price", "price in yuan"),
        ("901001,星河科技,,X1,笑话,1065800101,monthly,5,DG,,,", "cancel_cmd", "monthly"),
        ("901001,星河科技,,X1,笑话,1065800101,monthly,5,,TD,,", "subscribe_cmd", "empty"),
        ("901001,星河科技,400-800,X1,笑话,1065800101,monthly,5,DG,TD,,", None, None),
        ("901001,星河科技,4008x,X1,笑话,1065800101,monthly,5,DG,TD,,", "sp_hotline", "phone"),
        ("9010 01,星河科技,,X1,笑话,1065800101,monthly,5,DG,TD,,", "sp_code", "letters"),
    ],
)
def test_bad_value_names_line_column_and_reason(
    tmp_path: Path, row: str, column: str | None, reason: str | None
) -> None:
    text = f"{HEADER}\n901009,好公司,,OK,好,1065800999,per_use,1,A,,,\n{row}\n"
    if column is None:  # the control case: this row is fine
        assert len(read_catalog(write(tmp_path, text)).entries) == 2
        return
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].where == f"line 3, column {column}"
    assert reason is not None and reason in problems[0].reason
    assert str(tmp_path / "catalog.csv") in str(problems[0])


@pytest.mark.parametrize(
    ("char", "label"),
    [
        ("\r", "CR"),
        ("\n", "LF"),
        ("\x1a", "Ctrl-Z"),
        ("\x1b", "ESC"),
        ("\x00", "NUL"),
        ("\t", "TAB"),
        ("\x7f", "U+007F"),
        ("\u200b", "ZERO WIDTH SPACE"),
        ("\u2028", "LINE SEPARATOR"),
    ],
)
@pytest.mark.parametrize("column", ["subscribe_cmd", "cancel_cmd", "access_number", "sp_name"])
def test_control_characters_are_rejected(
    tmp_path: Path, char: str, label: str, column: str
) -> None:
    values = {
        "sp_code": "901001",
        "sp_name": "星河科技",
        "sp_hotline": "",
        "service_code": "XHXH",
        "service_name": "笑话",
        "access_number": "1065800101",
        "billing": "monthly",
        "price": "5",
        "subscribe_cmd": "DG",
        "cancel_cmd": "TD",
        "use_cmd": "",
        "region": "",
    }
    values[column] = values[column][:1] + char + values[column][1:]
    row = ",".join(f'"{v}"' for v in values.values())  # quoted: CR/LF stay inside the field
    problems = problems_of(tmp_path, f"{HEADER}\n{row}\n")
    assert [p.where for p in problems] == [f"line 2, column {column}"]
    assert "control character" in problems[0].reason and label in problems[0].reason


def test_bad_file_imports_nothing_and_lists_every_problem(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = (
        GOOD
        + "901003,坏公司,,B1,坏,106580030X,monthly,5,DG,TD,,\n"
        + ("901003,坏公司,,B2,坏,1065800302,monthly,abc,DG,TD,,\n")
    )
    with pytest.raises(CatalogError) as info:
        import_catalog(session_factory, write(tmp_path, bad))
    assert [p.where for p in info.value.problems] == [  # type: ignore[attr-defined]
        "line 5, column access_number",
        "line 6, column price",
    ]
    assert count(session_factory, Service) == 0
    assert count(session_factory, Sp) == 0


def test_duplicate_service_in_one_file_is_rejected(tmp_path: Path) -> None:
    text = GOOD + "901001,星河科技,4008001001,XHXH,又一个,1065800109,monthly,5,DG,TD,,\n"
    problems = problems_of(tmp_path, text)
    assert problems[0].where == "line 5, column service_code"
    assert "duplicate of line 2" in problems[0].reason


def test_sp_named_differently_on_two_lines_is_rejected(tmp_path: Path) -> None:
    text = GOOD + "901001,银河科技,4008001001,XHX2,笑话2,1065800109,monthly,5,DG,TD,,\n"
    problems = problems_of(tmp_path, text)
    assert problems[0].where == "line 5, column sp_name"
    assert "line 2" in problems[0].reason


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("", "line 1", "header row"),
        (
            "901001,星河科技,XHXH,笑话,1065800101,monthly,5,DG\n",
            "line 1, column sp_code",
            "no header",
        ),
        (
            "sp_code,sp_name,service_code,service_name,access_number,billing,price\n",
            "line 1, column subscribe_cmd",
            "missing",
        ),
        (f"{HEADER}\n901001,星河科技,,X,笑话\n", "line 2", "fields"),
    ],
)
def test_structural_problems(tmp_path: Path, text: str, where: str, reason: str) -> None:
    problems = problems_of(tmp_path, text)
    assert problems[0].where == where
    assert reason in problems[0].reason


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"{HEADER}\n".encode() + "901001,星河科技".encode("gbk") + b"\n")
    with pytest.raises(CatalogError) as info:
        read_catalog(path)
    assert info.value.where == "line 2" and "UTF-8" in info.value.reason


@pytest.mark.parametrize(
    ("text", "fen"), [("5", 500), ("5.00", 500), ("0.1", 10), ("0.01", 1), ("12.5", 1250)]
)
def test_price_in_yuan_becomes_integer_fen(text: str, fen: int) -> None:
    assert parse_price(text) == fen
    assert isinstance(parse_price(text), int)


def test_reimport_updates_and_keeps_history(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import_catalog(session_factory, write(tmp_path, GOOD, "v1.csv"))
    xhxh = next(s for s in list_services(session_factory) if s.service_code == "XHXH")
    run = create_run(session_factory, "monthly", service_id=xhxh.service_id)

    changed = GOOD.replace(
        "XHXH,星河笑话,1065800101,monthly,5.00", "XHXH,星河笑话,1065800101,monthly,8"
    )
    result = import_catalog(session_factory, write(tmp_path, changed, "v2.csv"))
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)

    now = next(s for s in list_services(session_factory) if s.service_code == "XHXH")
    assert now.service_id == xhxh.service_id  # same service, new version
    assert (now.price_fen, now.version) == (800, 2)
    history = service_history(session_factory, xhxh.service_id)
    assert [(v.version, v.price_fen, v.source) for v in history] == [
        (1, 500, "v1.csv"),
        (2, 800, "v2.csv"),
    ]
    pinned = get_run(session_factory, run.id)
    assert pinned.service_id == xhxh.service_id
    assert pinned.service_version_id == history[0].id  # judged against the price it saw

    again = import_catalog(session_factory, write(tmp_path, changed, "v3.csv"))
    assert (again.updated, again.unchanged) == (0, 3)
    assert count(session_factory, ServiceVersion) == 4  # 3 services + one change


def test_sp_hotline_change_makes_new_versions(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import_catalog(session_factory, write(tmp_path, GOOD))
    import_catalog(session_factory, write(tmp_path, GOOD.replace("4008001001", "4008001002")))
    versions = {
        s.service_code: (s.version, s.sp_hotline)
        for s in list_services(session_factory)
        if s.sp_code == "901001"
    }
    assert versions == {"XHXH": (2, "4008001002"), "XHTQ": (2, "4008001002")}


def test_reimport_without_an_optional_column_keeps_its_values(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import_catalog(session_factory, write(tmp_path, GOOD))
    lean = "\n".join(
        ",".join(cell for i, cell in enumerate(line.split(",")) if i != 10)  # drop use_cmd
        for line in GOOD.strip().splitlines()
    )
    result = import_catalog(session_factory, write(tmp_path, lean + "\n"))
    assert result.unchanged == 3
    xhxh = next(s for s in list_services(session_factory) if s.service_code == "XHXH")
    assert xhxh.use_cmd == "XH"


def test_line_numbers_are_editor_lines(tmp_path: Path) -> None:
    """CRLF endings, a quoted CR and a quoted multi-line name do not shift the numbering."""
    text = (
        f"{HEADER}\r\n"
        '901001,星河科技,,A,"two\r\nlines",1065800101,per_use,1,A,,,\r\n'
        '901001,星河科技,,B,b,1065800102,per_use,1,"B\r",,,\r\n'
        "901001,星河科技,,C,c,1065800103,per_use,x,C,,,\r\n"
    )
    problems = problems_of(tmp_path, text)
    assert [(p.where, "control character" in p.reason) for p in problems] == [
        ("line 2, column service_name", True),
        ("line 4, column subscribe_cmd", True),
        ("line 5, column price", False),
    ]


def test_crlf_file_imports(tmp_path: Path) -> None:
    parsed = read_catalog(write(tmp_path, GOOD.replace("\n", "\r\n")))
    assert [e.line for e in parsed.entries] == [2, 3, 4]
    assert parsed.entries[0].region is None and parsed.entries[1].region == "北京"


WAP_HEADER = (
    "sp_code,sp_name,service_code,service_name,access_number,billing,price,subscribe_cmd,"
    "cancel_cmd,channel,url\n"
)


def test_channel_and_url_columns() -> None:
    from dialbot.catalog import parse_catalog_text

    text = WAP_HEADER + (
        "901020,掌上乐园,ZSWAP,掌上笑话,,monthly,5,订购,,wap,http://wap.zsly.example/joke\n"
        "901020,掌上乐园,ZSIVR,开心声讯,125900001,monthly,5,1,TD,ivr,\n"
        "901020,掌上乐园,ZSMMS,彩信杂志,1065800121,monthly,6,DG,TD,mms,\n"
        "901020,掌上乐园,ZSSMS,短信,1065800122,monthly,6,DG,TD,,\n"
    )
    entries = {e.service_code: e for e in parse_catalog_text(text, "c.csv").entries}
    assert (entries["ZSWAP"].channel, entries["ZSWAP"].url) == (
        "wap",
        "http://wap.zsly.example/joke",
    )
    assert entries["ZSWAP"].access_number == "" and entries["ZSWAP"].cancel_cmd is None
    assert [entries[c].channel for c in ("ZSIVR", "ZSMMS", "ZSSMS")] == ["ivr", "mms", "sms"]


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("901020,掌,W1,笑话,,monthly,5,订购,,wap,\n", "url"),
        ('901020,掌,W1,笑话,,monthly,5,订购,,wap,"http://wap.x.example/a""b"\n', "url"),
        ("901020,掌,W1,笑话,,monthly,5,订购,,wap,http://wap.x.example/页\n", "url"),
        ("901020,掌,W1,笑话,,monthly,5,订购,,fax,\n", "channel"),
        ("901020,掌,W1,笑话,10658,monthly,5,DG,TD,sms,http://wap.x.example/\n", "url"),
        ("901020,掌,W1,笑话,,monthly,5,DG,TD,sms,\n", "access_number"),
    ],
)
def test_bad_channel_rows_are_refused(row: str, column: str) -> None:
    from dialbot.catalog import CatalogErrors, parse_catalog_text

    with pytest.raises(CatalogErrors) as failure:
        parse_catalog_text(WAP_HEADER + row, "c.csv")
    assert f"column {column}" in str(failure.value)
