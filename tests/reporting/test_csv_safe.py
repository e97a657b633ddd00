"""CSV exports open safely in a spreadsheet: a UTF-8 BOM, formula-looking text neutralised,
numbers left numeric, and an exported catalogue re-imports unchanged."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest

from dialbot.catalog import parse_catalog_text
from dialbot.csvsafe import BOM, safe_cell, unneutralise, write_safe
from dialbot.reporting.export import csv_text
from dialbot.reporting.scoring import SpTally, rank_period
from dialbot.sim.catalog import COLUMNS, write_catalog
from dialbot.sim.worldfile import demo_world_path, load_world

from .sample import build_report

HOSTILE_NAMES = {
    "901005": '=HYPERLINK("http://evil.example","点我")',
    "901006": "@SUM(A1:A9)",
    "901007": "+cmd|' /C calc'!A0",
    "901008": "-2+3",
    "901009": "\tTAB公司",
    "901010": "\r回车公司",
}


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("@x", "'@x"),
        ("+x", "'+x"),
        ("-x", "'-x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("星河科技", "星河科技"),
        ("a=b", "a=b"),
        ("-3.5", "-3.5"),  # a number stays a number
        ("+12", "+12"),
        (-7, "-7"),
        (None, ""),
        (True, "true"),
    ],
)
def test_safe_cell(value: object, cell: str) -> None:
    assert safe_cell(value) == cell
    if isinstance(value, str):
        assert unneutralise(cell) == value


def test_ranking_csv_has_a_bom_and_no_live_formula() -> None:
    report = build_report()
    tallies = [SpTally(code, name, 12, 1, ()) for code, name in HOSTILE_NAMES.items()]
    data = replace(report, ranking=rank_period(report.period.label, tallies))
    text = csv_text(data)
    assert text.startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))
    names = {r["sp_code"]: r["sp_name"] for r in rows}
    assert names == {code: "'" + name for code, name in HOSTILE_NAMES.items()}
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "@", "\t", "\r"))
            assert not cell.startswith("-") or cell.replace(".", "").lstrip("-").isdigit()
    assert rows[0]["integrity_score"].replace(".", "").isdigit()


def test_exported_catalogue_reimports_unchanged() -> None:
    """The catalogue export neutralises hostile names; the importer gives them back."""
    world = load_world(demo_world_path())
    out = io.StringIO()
    write_catalog(world, out)
    assert out.getvalue().startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().removeprefix(BOM))))
    rows[0]["sp_name"] = HOSTILE_NAMES["901005"]
    rows[0]["service_name"] = "-减价版"
    exported = io.StringIO()
    write_safe(exported, COLUMNS, ([row[c] for c in COLUMNS] for row in rows))
    assert "'=HYPERLINK" in exported.getvalue() and "'-减价版" in exported.getvalue()
    same_sp = [row for row in rows if row["sp_code"] == rows[0]["sp_code"]]
    for row in same_sp:
        row["sp_name"] = HOSTILE_NAMES["901005"]
    exported = io.StringIO()
    write_safe(exported, COLUMNS, ([row[c] for c in COLUMNS] for row in rows))
    parsed = parse_catalog_text(exported.getvalue(), "catalog.csv")
    first = parsed.entries[0]
    assert first.sp_name == HOSTILE_NAMES["901005"] and first.service_name == "-减价版"
