"""Rows of a table (an .xlsx sheet, a .csv file) as lines that each say what they are.

The ingest worker cuts text into chunks without knowing it came from a table, so a chunk
from the middle of a sheet would hold figures without their column names. Each row is
therefore rendered self-describing, with the header repeated in it:

    Sales · columns: Region; Sales; Growth
    Sales · row 12: Region: North; Sales: 1200; Growth: 5 %

The header is the first non-empty row when all its cells are text (not numbers or dates);
a cell under a blank header cell, or right of the header, is labelled by its column letter.
A table without such a header gives its rows as values only (`Sales · row 3: 1; 2; 3`).
Empty cells are left out. A line break inside a cell becomes a space, so that a row stays
one line. The `·`-prefix names the sheet (an .xlsx); a .csv has none (`row 12: ...`).

Bounds (Limits): more non-empty rows than max_sheet_rows, or more non-empty cells in a row
than max_row_cells, is LimitExceeded; a cell longer than max_cell_chars is cut there and
ends with "…".
"""

from __future__ import annotations

from dataclasses import dataclass

from rag_parse_worker.extract.errors import LimitExceeded
from rag_parse_worker.extract.limits import Limits, TextBudget

ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Cell:
    column: int  # 0-based
    text: str
    is_text: bool  # a string, not a number, date or boolean: may be a column name


def column_letters(column: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (the spreadsheet's own column names)."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def clip(text: str, limits: Limits) -> str:
    if len(text) > limits.max_cell_chars:
        return text[: limits.max_cell_chars] + ELLIPSIS
    return text


def _one_line(text: str) -> str:
    if "\n" in text or "\r" in text:
        return " ".join(text.split())
    return text.strip()


class TableWriter:
    """Renders one table's rows as they come (see the module docstring)."""

    def __init__(self, label: str, what: str, limits: Limits, budget: TextBudget) -> None:
        self._prefix = f"{label} · " if label else ""
        self._what = what  # how a limit message names the table: 'The sheet "Sales"', 'The CSV file'
        self._limits = limits
        self._budget = budget
        self._header: dict[int, str] | None = None
        self._rows = 0
        self.lines: list[str] = []

    def _emit(self, line: str) -> None:
        self._budget.add(len(line) + 1)
        self.lines.append(line)

    def row(self, number: int, cells: list[Cell]) -> None:
        """Row `number` (1-based, as the user sees it); `cells` in column order."""
        cells = [Cell(c.column, _one_line(c.text), c.is_text) for c in cells]
        cells = [c for c in cells if c.text]
        if not cells:
            return
        self._rows += 1
        if self._rows > self._limits.max_sheet_rows:
            raise LimitExceeded(f"{self._what} has more than {self._limits.max_sheet_rows} rows, the limit.")
        if len(cells) > self._limits.max_row_cells:
            raise LimitExceeded(
                f"{self._what} has a row with more than {self._limits.max_row_cells} cells, the limit."
            )
        if self._rows == 1 and all(c.is_text for c in cells):
            self._header = {c.column: c.text for c in cells}
            self._emit(f"{self._prefix}columns: " + "; ".join(c.text for c in cells))
            return
        if self._header is None:
            body = "; ".join(c.text for c in cells)
        else:
            header = self._header
            body = "; ".join(f"{header.get(c.column) or column_letters(c.column)}: {c.text}" for c in cells)
        self._emit(f"{self._prefix}row {number}: {body}")

    def text(self) -> str:
        return "\n".join(self.lines)
