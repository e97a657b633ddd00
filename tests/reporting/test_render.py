"""The static site and the open data: escaping, masking, truncation, overrides, §6 shape."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dialbot.errors import InputError
from dialbot.reporting.model import ReportData
from dialbot.reporting.publish import parse_formats, publish
from dialbot.reporting.safetext import untrusted

from .sample import SP_NAMES, all_text_files, unmasked_numbers


def test_site_has_index_sp_pages_methodology_and_is_offline(
    report: ReportData, tmp_path: Path
) -> None:
    paths = publish(report, tmp_path, ["html"])
    assert paths["html"] == tmp_path / "index.html"
    for code in SP_NAMES:
        assert (tmp_path / "sp" / f"{code}.html").is_file()
    assert (tmp_path / "methodology.html").is_file()
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    for name in SP_NAMES.values():
        assert name in index
    assert "<svg" in index and "SP integrity ranking" in index
    for text in all_text_files(tmp_path).values():
        assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in text


def test_sp_message_with_script_is_inert(report: ReportData, tmp_path: Path) -> None:
    publish(report, tmp_path, ["html"])
    for path, text in all_text_files(tmp_path).items():
        lowered = text.lower()
        assert "<script" not in lowered, path
        assert "<img" not in lowered, path
        assert "<b>会员" not in text, path
    page = (tmp_path / "sp" / "901003.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "掌上乐园&lt;b&gt;会员&lt;/b&gt;" in page


def test_controls_are_visible_and_long_text_is_cut(report: ReportData, tmp_path: Path) -> None:
    publish(report, tmp_path, ["html"])
    page = (tmp_path / "sp" / "901003.html").read_text(encoding="utf-8")
    assert "\x1b" not in page and "\x00" not in page and "\u202e" not in page
    assert '<span class="ctl">\\x1b</span>[31m红色' in page
    assert '<span class="ctl">\\u202e</span>反转' in page
    assert "truncated, 3000 characters in full" in page
    assert "超长内容" * 126 not in page  # 500 characters kept, not 3000


def test_untrusted_filter_masks_numbers_inside_sp_text() -> None:
    html = str(untrusted("请致电13912345678或+8613700137000，热线4008001001，代码10658001011234"))
    assert "139****5678" in html and "137****7000" in html
    assert "4008001001" in html and "10658001011234" in html
    assert unmasked_numbers(html) == []


def test_no_unmasked_msisdn_in_html_csv_json(report: ReportData, tmp_path: Path) -> None:
    publish(report, tmp_path, ["html", "csv", "json"])
    files = all_text_files(tmp_path)
    assert len(files) >= 8
    for path, text in files.items():
        assert unmasked_numbers(text) == [], path
    page = (tmp_path / "sp" / "901003.html").read_text(encoding="utf-8")
    assert "138****8000" in page and "139****5678" in page


def test_json_follows_spec_section_6(report: ReportData, tmp_path: Path) -> None:
    paths = publish(report, tmp_path, ["json"])
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["period"] == "2026-11" and doc["methodology"] == "v1"
    assert doc["generated_at"] == "2026-12-01T09:00:00+08:00"
    first = doc["entries"][0]
    for key in (
        "rank",
        "sp_code",
        "sp_name",
        "integrity_score",
        "quality_score",
        "probes",
        "services_tested",
        "violations",
    ):
        assert key in first
    assert first["rank"] == 1 and first["sp_name"] == "星河科技"
    by_code = {e["sp_code"]: e for e in doc["entries"]}
    assert by_code["901003"]["violations"] == {"OVERCHARGE": 1}
    assert by_code["901004"]["rank"] is None and by_code["901004"]["ranked"] is False
    assert by_code["901001"]["violations"] == {}
    assert by_code["901001"]["quality_findings"] == {"NO_RESPONSE": 1}


def test_csv_has_one_row_per_sp(report: ReportData, tmp_path: Path) -> None:
    paths = publish(report, tmp_path, ["csv"])
    text = paths["csv"].read_text(encoding="utf-8")
    assert text.startswith("\ufeff")  # a BOM: spreadsheets read it as UTF-8
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [r["sp_code"] for r in rows] == ["901001", "901002", "901003", "901004"]
    assert rows[2]["violations"] == "OVERCHARGE:1" and rows[2]["critical"] == "1"
    assert rows[3]["rank"] == "" and rows[3]["ranked"] == "false"


def test_templates_and_css_are_overridable_from_reports(report: ReportData, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "methodology.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block main %}<p id="local">本地方法 {{ "<i>" }}</p>{% endblock %}',
        encoding="utf-8",
    )
    (reports / "style.css").write_text("body { color: #123456; }", encoding="utf-8")
    out = tmp_path / "out"
    publish(report, out, ["html"], override_dir=reports)
    page = (out / "methodology.html").read_text(encoding="utf-8")
    assert '<p id="local">本地方法 &lt;i&gt;</p>' in page  # autoescape still on in overrides
    assert (out / "style.css").read_text(encoding="utf-8") == "body { color: #123456; }"
    assert "星河科技" in (out / "index.html").read_text(encoding="utf-8")  # package default kept


def test_format_names_are_checked() -> None:
    assert parse_formats("pdf, html") == ["html", "pdf"]
    with pytest.raises(InputError, match="docx"):
        parse_formats("html,docx")
