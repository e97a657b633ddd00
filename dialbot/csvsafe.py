"""CSV that is safe to open in a spreadsheet: a UTF-8 BOM, and no cell that runs as a formula.

Our CSV exports (rankings, findings, the catalogue) carry SP and catalogue
text, which is untrusted: an SP name like `=HYPERLINK("http://…")` or
`@SUM(…)` would run as a formula in Excel, LibreOffice or Sheets (CSV
injection). So a text cell that begins with `=`, `+`, `-`, `@`, TAB or CR
is neutralised with a leading `'` (the convention spreadsheets display as
plain text, OWASP's advice).

Numbers are left alone, so numeric columns stay numeric: a cell that is
exactly a decimal number (`-3.5`, `+12`, `0.10`) cannot be a formula in any
spreadsheet, whatever its sign. Only text is neutralised.

The BOM makes Excel read the file as UTF-8 (without it Chinese names are
garbled); `dialbot catalog import` strips it again, and undoes the `'` this
module adds (`unneutralise`), so an exported catalogue re-imports unchanged.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, TextIO

BOM = "\ufeff"
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_cell(value: Any) -> str:
    """One cell as text: None -> "", a number as written, risky text prefixed with `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text.startswith(TRIGGERS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def unneutralise(cell: str) -> str:
    """Undo `safe_cell` on a cell read back (`'=x` -> `=x`); anything else unchanged."""
    if cell.startswith("'") and cell[1:].startswith(TRIGGERS):
        return cell[1:]
    return cell


def write_safe(
    stream: TextIO, header: Iterable[str], rows: Iterable[Iterable[Any]], bom: bool = True
) -> int:
    """Write a header and rows (every cell through `safe_cell`); returns the row count."""
    if bom:
        stream.write(BOM)
    # CRLF (RFC 4180): the csv module quotes a cell holding a character of the line
    # terminator, so a stray CR or LF in SP text stays inside its quoted cell
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    count = 0
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
        count += 1
    return count
