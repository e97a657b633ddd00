"""Catalogue rows for voice lines (spec/channels.md §1): channel ivr, billing per_minute."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dialbot.catalog import CatalogErrors, import_catalog, parse_catalog_text
from dialbot.db.catalogue import list_services

HEADER = (
    "sp_code,sp_name,service_code,service_name,access_number,billing,price,"
    "subscribe_cmd,cancel_cmd,use_cmd,channel\n"
)
IVR = "901020,掌上乐园,ZSIVR,开心声讯,125900001,per_minute,1.00,,,2,ivr\n"
SMS = "901001,星河科技,XHXH,星河笑话,1065800101,monthly,5.00,DG,TD,XH,\n"


def test_ivr_line_parses_with_empty_keywords() -> None:
    parsed = parse_catalog_text(HEADER + IVR + SMS, "c.csv")
    ivr, sms = parsed.entries
    assert (ivr.channel, ivr.billing, ivr.price_fen, ivr.subscribe_cmd, ivr.use_cmd) == (
        "ivr",
        "per_minute",
        100,
        "",
        "2",
    )
    assert sms.channel == "sms"  # empty cell: the default


def test_file_without_channel_column_is_all_sms() -> None:
    text = "sp_code,sp_name,service_code,service_name,access_number,billing,price,subscribe_cmd,cancel_cmd\n"
    parsed = parse_catalog_text(
        text + "901001,星河科技,XHXH,星河笑话,1065800101,monthly,5,DG,TD\n", "c"
    )
    assert parsed.entries[0].channel == "sms"


@pytest.mark.parametrize(
    ("row", "where", "reason"),
    [
        ("901,X,A,名,125900001,per_minute,1,,,2,sms\n", "column billing", "ivr"),
        ("901,X,A,名,125900001,per_minute,1,,,2,\n", "column billing", "ivr"),
        ("901,X,A,名,125900001,per_minute,1,1,,2,ivr\n", "column subscribe_cmd", "empty"),
        ("901,X,A,名,125900001,per_use,1,,,2,ivr\n", "column billing", "per_minute"),
        ("901,X,A,名,125900001,per_minute,1,,,X9,ivr\n", "column use_cmd", "DTMF"),
        ("901,X,A,名,125900001,monthly,5,DG,,,ivr\n", "column subscribe_cmd", "DTMF"),
        ("901,X,A,名,125900001,per_minute,1,,,2,fax\n", "column channel", "one of"),
        ("901,X,A,名,1065800101,monthly,5,,TD,,sms\n", "column subscribe_cmd", "empty"),
    ],
)
def test_bad_ivr_rows(row: str, where: str, reason: str) -> None:
    with pytest.raises(CatalogErrors) as caught:
        parse_catalog_text(HEADER + row, "c.csv")
    assert where in caught.value.where and reason in caught.value.reason


def test_key_press_subscription_row_is_valid() -> None:
    row = "901,X,A,名,125900001,monthly,5,1,,,ivr\n"
    (entry,) = parse_catalog_text(HEADER + row, "c.csv").entries
    assert (entry.billing, entry.subscribe_cmd, entry.cancel_cmd) == ("monthly", "1", None)


def test_channel_is_stored_and_listed(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(HEADER + IVR + SMS, encoding="utf-8")
    import_catalog(session_factory, path)
    views = {v.service_code: v for v in list_services(session_factory)}
    assert views["ZSIVR"].channel == "ivr" and views["ZSIVR"].billing == "per_minute"
    assert views["XHXH"].channel == "sms"
