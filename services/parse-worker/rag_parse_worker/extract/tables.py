"""Where a table's separators go, for the Word and PowerPoint readers alike.

Cells of a row are separated by tabs and rows end with a line break; a table starts and
ends with a blank line. A table nested in a cell (WordprocessingML allows it) is flattened
into that cell: its cells and rows are separated by spaces, and it adds no blank lines.
Each method returns the text to emit (possibly empty) and keeps the count of cells seen in
the current row of every open table.
"""

from __future__ import annotations


class TableLayout:
    def __init__(self) -> None:
        self._cells: list[int] = []  # per open table: cells seen in its current row

    @property
    def inside(self) -> bool:
        return bool(self._cells)

    def table_start(self) -> str:
        text = "" if self._cells else "\n\n"
        self._cells.append(0)
        return text

    def row_start(self) -> None:
        if self._cells:
            self._cells[-1] = 0

    def cell_start(self) -> str:
        if not self._cells:
            return ""
        text = ("\t" if len(self._cells) == 1 else " ") if self._cells[-1] else ""
        self._cells[-1] += 1
        return text

    def row_end(self) -> str:
        if not self._cells:
            return ""
        return "\n" if len(self._cells) == 1 else " "

    def table_end(self) -> str:
        if not self._cells:
            return ""
        self._cells.pop()
        return " " if self._cells else "\n\n"
