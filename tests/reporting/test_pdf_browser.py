"""The PDF (WeasyPrint) and the index page in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dialbot.reporting.model import ReportData
from dialbot.reporting.publish import publish

from .sample import SP_NAMES, unmasked_numbers

CJK_FONT = re.compile(r"CJK|WenQuanYi|WQY|Source-?Han|Droid-?Sans-?Fallback|AR-?PL", re.I)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1400",
]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package}: apt-get install {package})")
    return path


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .sample import build_report

    out = tmp_path_factory.mktemp("pdf")
    return publish(build_report(), out, ["pdf"])["pdf"]


def _pdftotext(pdf: Path) -> str:
    return subprocess.run(
        [_tool("pdftotext", "poppler-utils"), "-layout", "-enc", "UTF-8", str(pdf), "-"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip


def test_pdf_text_has_chinese_sp_names_page_numbers_and_contents(pdf: Path) -> None:
    text = _pdftotext(pdf)
    for name in SP_NAMES.values():
        assert name in text
    assert "目录 Contents" in text
    assert re.search(r"第 2 页 / 共 (\d+) 页 · page 2 of \1", text)
    assert re.search(r"各 SP 详情 SP details\.{5,}\s*\d+", text)  # contents with page numbers
    assert (
        "&lt;" not in text and "<script>" in text
    )  # shown as text, not markup, not double-escaped
    assert unmasked_numbers(text) == []


def test_pdf_bookmarks_lead_to_each_sp(pdf: Path) -> None:
    """Every SP heading is a PDF bookmark whose page holds that SP's section."""
    xml = subprocess.run(
        [_tool("pdftohtml", "poppler-utils"), "-stdout", "-xml", "-i", "-q", str(pdf)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    pages = _pdftotext(pdf).split("\f")
    for code, name in SP_NAMES.items():
        item = re.search(rf'<item page="(\d+)">{name}（{code}）</item>', xml)
        assert item, f"no bookmark for {name}"
        page = pages[int(item[1]) - 1]
        assert f"{name}（{code}）" in page and "诚信 integrity" in page


def test_pdf_embeds_a_cjk_font(pdf: Path) -> None:
    fonts = subprocess.run(
        [_tool("pdffonts", "poppler-utils"), str(pdf)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert CJK_FONT.search(fonts), f"no CJK font embedded:\n{fonts}"


def test_index_renders_in_headless_chromium(report: ReportData, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (Debian package chromium: apt-get install chromium)")
    site = tmp_path / "site"
    index = publish(report, site, ["html"])["html"]
    shot = tmp_path / "index.png"
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", index.as_uri()],
        check=True, capture_output=True, timeout=90,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a blank 1280x1400 page compresses to a few kB
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 1400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # text, table rules and the chart, not blank
