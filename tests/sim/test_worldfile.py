"""World files: the demo loads and uses every knob; bad files are refused precisely."""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from dialbot.errors import WorldError
from dialbot.sim.catalog import COLUMNS, catalog_rows, write_catalog
from dialbot.sim.world import Behaviour
from dialbot.sim.worldfile import DIALECTS, demo_world_path, load_world, luhn_digit

from .support import one_service_world, write_world


def luhn_ok(number: str) -> bool:
    return luhn_digit(number[:-1]) == number[-1]


def test_demo_world_is_rich_enough() -> None:
    world = load_world(demo_world_path())
    services = [s for sp in world.sps for s in sp.services]
    assert len(world.sps) >= 12
    assert len(services) >= 30
    assert {s.billing for s in services} == {"monthly", "per_use", "per_minute"}
    assert {s.channel for s in services if s.billing == "per_minute"} == {"ivr"}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in s.name) for s in services)
    assert len(world.sims) == 8
    assert {card.dialect for card in world.sims} == set(DIALECTS)
    honest = [s for s in services if s.behaviour == Behaviour(latency_ms=s.behaviour.latency_ms)]
    assert honest and len(honest) < len(services)
    assert all(s.behaviour.latency_ms[1] <= 200 for s in services)


@pytest.mark.parametrize("knob", [f.name for f in fields(Behaviour)])
def test_demo_world_uses_every_knob(knob: str) -> None:
    world = load_world(demo_world_path())
    default = getattr(Behaviour(), knob)
    used = [
        s.code for sp in world.sps for s in sp.services if getattr(s.behaviour, knob) != default
    ]
    assert used, f"no demo service sets {knob}"


def test_identities_are_valid_unique_and_deterministic() -> None:
    first = load_world(demo_world_path()).sims
    again = load_world(demo_world_path()).sims
    assert first == again
    for card in first:
        assert len(card.msisdn) == 11 and card.msisdn.startswith("138") and card.msisdn.isdigit()
        assert len(card.imsi) == 15 and card.imsi.startswith("46000")
        assert len(card.iccid) == 20 and card.iccid.startswith("898600") and luhn_ok(card.iccid)
        assert len(card.imei) == 15 and luhn_ok(card.imei)
    for attr in ("msisdn", "imsi", "iccid", "imei"):
        assert len({getattr(c, attr) for c in first}) == len(first)


def test_luhn_digit_matches_a_known_imei() -> None:
    assert luhn_digit("49015420323751") == "8"  # IMEI 490154203237518, the textbook example


def test_identities_depend_on_bank_name(tmp_path: Path) -> None:
    a = one_service_world()
    b = one_service_world()
    b["bank"] = {**b["bank"], "name": "other-bank"}
    wa = load_world(write_world(tmp_path, a, "a.yaml"))
    wb = load_world(write_world(tmp_path, b, "b.yaml"))
    assert wa.sims[0].msisdn != wb.sims[0].msisdn


def test_defaults_and_overrides(tmp_path: Path) -> None:
    data = one_service_world(seed=7, night_s=5)
    data["bank"]["slots"] = {
        2: {"dialect": "zte", "balance_fen": 5, "faults": {"network_lost": [1, 2]}}
    }
    world = load_world(write_world(tmp_path, data))
    assert world.seed == 7 and world.night_s == 5.0
    assert world.sims[0].dialect == "generic" and world.sims[0].balance_fen == 10000
    assert world.sims[1].dialect == "zte" and world.sims[1].balance_fen == 5
    assert world.sims[1].faults.network_lost == (1.0, 2.0)
    assert world.sps[0].services[0].behaviour.latency_ms == (10, 10)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted/indexed path like sps.0.services.0.behaviour.x in nested data."""
    keys = path.split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[int(last) if last.isdigit() and path.startswith("bank.slots") else last] = value


_DELETE = object()
SVC = "sps.0.services.0"

BAD = [
    ("bogus", 1, "bogus", "unknown key"),
    (
        f"{SVC}.behaviour.charge_factr",
        1.0,
        "sps[0].services[0].behaviour.charge_factr",
        "unknown key",
    ),
    (f"{SVC}.price_fen", -5, "sps[0].services[0].price_fen", ">= 0"),
    (f"{SVC}.price_fen", "5元", "sps[0].services[0].price_fen", "must be an integer"),
    (
        f"{SVC}.behaviour.charge_factor",
        -1,
        "sps[0].services[0].behaviour.charge_factor",
        "must be in",
    ),
    (f"{SVC}.behaviour.charge_factor", "x", "sps[0].services[0].behaviour.charge_factor", "number"),
    (f"{SVC}.behaviour.responds", 1.5, "sps[0].services[0].behaviour.responds", "0.0..1.0"),
    (f"{SVC}.behaviour.unsolicited_subscribe", -0.1, "behaviour.unsolicited_subscribe", "0.0..1.0"),
    (
        f"{SVC}.behaviour.latency_ms",
        [300, 20],
        "sps[0].services[0].behaviour.latency_ms",
        "min 300 > max 20",
    ),
    (f"{SVC}.behaviour.latency_ms", [1], "behaviour.latency_ms", "[min_ms, max_ms]"),
    (
        f"{SVC}.behaviour.prompt_omits",
        ["price", "colour"],
        "behaviour.prompt_omits[1]",
        "must be one of",
    ),
    (f"{SVC}.behaviour.cancel_works", "no", "behaviour.cancel_works", "true or false"),
    (f"{SVC}.behaviour.messages_after_cancel", -1, "behaviour.messages_after_cancel", ">= 0"),
    (f"{SVC}.billing", "yearly", "sps[0].services[0].billing", "monthly or per_use"),
    (f"{SVC}.cancel", _DELETE, "sps[0].services[0].cancel", "required"),
    (f"{SVC}.access", "10658-01", "sps[0].services[0].access", "digits only"),
    (f"{SVC}.access", 1065800101, "sps[0].services[0].access", "quote it"),
    (f"{SVC}.access", "10086", "sps[0].services[0].access", "service number"),
    (f"{SVC}.subscribe", "D\x1aG", "sps[0].services[0].subscribe", "control character"),
    (f"{SVC}.subscribe", "Y", "sps[0].services[0].subscribe", "confirmation token"),
    ("sps.0.code", 901001, "sps[0].code", "must be a string"),
    ("sps.0.hotline", "call us", "sps[0].hotline", "phone number"),
    ("bank.modems", 0, "bank.modems", ">= 1"),
    ("bank.modems", _DELETE, "bank.modems", "required"),
    ("bank.dialect", "nokia", "bank.dialect", "unknown dialect"),
    ("bank.slots", {9: {"dialect": "zte"}}, "bank.slots.9", "1..2"),
    ("bank.slots", {1: {"dialect": "telit"}}, "bank.slots.1.dialect", "unknown dialect"),
    ("bank.slots", {1: {"colour": "red"}}, "bank.slots.1.colour", "unknown key"),
    (
        "bank.slots",
        {1: {"faults": {"garbage_rate": 2}}},
        "bank.slots.1.faults.garbage_rate",
        "0..1",
    ),
    (
        "bank.slots",
        {1: {"faults": {"network_lost": [5]}}},
        "faults.network_lost",
        "[start_s, duration_s]",
    ),
    (
        "bank.slots",
        {1: {"faults": {"stop_after_commands": 0}}},
        "faults.stop_after_commands",
        ">= 1",
    ),
    ("carrier", {"mo_sms_fee_fen": -1}, "carrier.mo_sms_fee_fen", "negative"),
    ("carrier", {"hello": 1}, "carrier.hello", "unknown key"),
    ("night_s", 0, "night_s", "> 0"),
    ("sms_validity_s", 0, "sms_validity_s", "> 0"),
    ("sms_validity_s", "1d", "sms_validity_s", "number"),
]


@pytest.mark.parametrize(
    ("path", "value", "where", "reason"), BAD, ids=[b[0] + ":" + str(b[1]) for b in BAD]
)
def test_bad_world_is_refused(
    tmp_path: Path, path: str, value: Any, where: str, reason: str
) -> None:
    data = copy.deepcopy(one_service_world())
    _set(data, path, value)
    file = write_world(tmp_path, data)
    with pytest.raises(WorldError) as info:
        load_world(file)
    err = info.value
    assert err.file == str(file)
    assert where in err.where
    assert "(line " in err.where
    assert reason in err.reason
    assert str(file) in str(err)


def test_per_use_with_cancel_keyword_is_refused(tmp_path: Path) -> None:
    data = one_service_world(billing="per_use")
    data["sps"][0]["services"][0]["cancel"] = "TD"
    file = write_world(tmp_path, data)
    with pytest.raises(WorldError, match=r"sps\[0\]\.services\[0\]\.cancel.*only monthly"):
        load_world(file)


def test_duplicate_access_and_keyword_is_refused(tmp_path: Path) -> None:
    data = one_service_world()
    second = dict(
        data["sps"][0]["services"][0], code="OTHER", subscribe="QT", use="xh", cancel="TD2"
    )
    data["sps"].append({"code": "901002", "name": "云端信息", "services": [second]})
    with pytest.raises(WorldError) as info:
        load_world(write_world(tmp_path, data))
    assert "sps[1].services[0].use" in info.value.where
    assert "1065800101" in info.value.reason and "sps[0].services[0].use" in info.value.reason


def test_duplicate_codes_are_refused(tmp_path: Path) -> None:
    data = one_service_world()
    data["sps"][0]["services"].append(dict(data["sps"][0]["services"][0], access="1065800199"))
    with pytest.raises(WorldError, match=r"sps\[0\]\.services\[1\]\.code.*duplicate service code"):
        load_world(write_world(tmp_path, data))
    data = one_service_world()
    data["sps"].append(
        dict(data["sps"][0], services=[dict(data["sps"][0]["services"][0], access="1")])
    )
    with pytest.raises(WorldError, match=r"sps\[1\]\.code.*duplicate SP code"):
        load_world(write_world(tmp_path, data))


def test_yaml_level_errors_name_the_line(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("bank:\n  name: a\n  modems: 1\n  modems: 2\nsps: []\n", encoding="utf-8")
    with pytest.raises(WorldError, match=r"bank\.modems \(line 4\).*duplicate key"):
        load_world(dup)
    broken = tmp_path / "broken.yaml"
    broken.write_text("bank: [unclosed\n", encoding="utf-8")
    with pytest.raises(WorldError, match="not valid YAML"):
        load_world(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(WorldError, match="empty"):
        load_world(empty)
    with pytest.raises(WorldError, match="cannot read"):
        load_world(tmp_path / "missing.yaml")


def test_error_line_points_at_the_offending_key(tmp_path: Path) -> None:
    text = (
        demo_world_path()
        .read_text(encoding="utf-8")
        .replace("charge_factor: 2.0", "charge_factor: -2.0")
    )
    file = tmp_path / "w.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(WorldError) as info:
        load_world(file)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "charge_factor: -2.0" in row)
    assert info.value.where == f"sps[2].services[0].behaviour.charge_factor (line {line})"


def test_catalog_has_exactly_the_spec_columns_and_no_behaviour() -> None:
    world = load_world(demo_world_path())
    out = io.StringIO()
    count = write_catalog(world, out)
    assert out.getvalue().startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(out.getvalue().removeprefix("\ufeff"))))
    assert count == len(rows) == sum(len(sp.services) for sp in world.sps)
    assert (
        tuple(rows[0].keys())
        == COLUMNS
        == (
            "sp_code",
            "sp_name",
            "sp_hotline",
            "service_code",
            "service_name",
            "access_number",
            "billing",
            "price",
            "subscribe_cmd",
            "cancel_cmd",
            "use_cmd",
            "region",
            "channel",
            "url",
        )
    )
    text = out.getvalue()
    for knob in (f.name for f in fields(Behaviour)):
        assert knob not in text
    first = rows[0]
    assert first["sp_code"] == "901001" and first["service_name"] == "星河笑话"
    assert (
        first["price"] == "5.00" and first["billing"] == "monthly" and first["cancel_cmd"] == "TD"
    )
    by_code = {r["service_code"]: r for r in rows}
    assert by_code["YDCP"]["price"] == "0.10" and by_code["YDCP"]["cancel_cmd"] == ""
    assert by_code["CYGL"]["region"] == "广东"
    assert (by_code["KXSX"]["channel"], by_code["KXSX"]["billing"]) == ("ivr", "per_minute")
    assert by_code["KXSX"]["subscribe_cmd"] == "" and by_code["XHXH"]["channel"] == "sms"
    # a dishonest service looks exactly like an honest one in the catalogue
    assert by_code["LYQP"]["price"] == "10.00"
    assert len(catalog_rows(world)) == count
