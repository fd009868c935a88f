"""Excel .xlsx (and .xlsm, .xltx, .xltm): every sheet, row by row, as self-describing lines (rows.py).

Read with ooxml.py's guard rails (every part streamed through expat; no DTD, no bomb, no
giant token); the uncompressed-size budget counts the shared strings, the styles and every
sheet together. Sheets come in the workbook's order (xl/workbook.xml `sheets`), hidden ones
too (their cells are the workbook's content), each as a block of lines after a blank line.

Cell values, as Excel shows them without the number formatting's cosmetics:

- shared strings (`t="s"`, the rich-text runs joined, phonetic guides left out), inline
  strings (`t="inlineStr"`), formula strings (`t="str"`): the text;
- a formula: its cached value (the last value Excel computed), never the formula;
- numbers: shortest decimal form (1200, 0.05); a number whose cell style is a date or time
  format (built-in or custom, read from xl/styles.xml) is an ISO 8601 date (2024-03-31),
  date-time (2024-03-31T14:30:00) or time (14:30:00), in the workbook's 1900 or 1904 date
  system; a percent format gives "5 %";
- booleans TRUE/FALSE, errors as Excel writes them (#DIV/0!), ISO dates (`t="d"`) as given.

Bounds: Limits.max_sheet_rows, max_row_cells (LimitExceeded) and max_cell_chars
(truncation), see rows.py. Not read: charts, comments, drawings, pivot caches.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.ooxml import Package, open_package
from rag_parse_worker.extract.rows import Cell, TableWriter, clip

S_NS = frozenset(
    {
        "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
        "http://purl.oclc.org/ooxml/spreadsheetml/main",
    }
)
R_ID = frozenset(
    {
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships id",
        "http://purl.oclc.org/ooxml/officeDocument/relationships id",
    }
)
DEFAULT_MAIN_PART = "xl/workbook.xml"
# Built-in number formats (ECMA-376 §18.8.30, plus the East Asian date formats).
BUILTIN_DATES = frozenset({14, 15, 16, 17, 22, 27, 28, 29, 30, 31, 34, 35, 36, 50, 51, 52, 53, 54, 57, 58})
BUILTIN_TIMES = frozenset({18, 19, 20, 21, 32, 33, 45, 46, 47, 55, 56})
BUILTIN_PERCENT = frozenset({9, 10})
MAX_SERIAL = 2958465  # 9999-12-31
_CELL_REF = re.compile(r"([A-Za-z]{1,3})(\d*)")
# What a format code shows, without its literals ("..." and \x), colours and conditions ([Red]).
_LITERALS = re.compile(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]')
_TIME_PART = re.compile(r"[hHsS]")
_DAY_OR_YEAR = re.compile(r"[yYdD]")
_MONTH_OR_MINUTE = re.compile(r"[mM]")

Kind = str  # "date", "datetime", "time", "percent", "" (a plain number)


def _split(name: str) -> tuple[str, str]:
    uri, _, local = name.rpartition(" ")
    return uri, local


def format_kind(code: str) -> Kind:
    """How a number under this custom format code reads: a date, a time, a percentage, or plain."""
    shown = _LITERALS.sub("", code.split(";", 1)[0])
    if shown.lower() == "general":
        return ""
    has_time = bool(_TIME_PART.search(shown))
    # "m" is a month beside days and years, a minute beside hours and seconds.
    has_date = bool(_DAY_OR_YEAR.search(shown)) or (not has_time and bool(_MONTH_OR_MINUTE.search(shown)))
    if has_date and has_time:
        return "datetime"
    if has_date:
        return "date"
    if has_time:
        return "time"
    if "%" in shown:
        return "percent"
    return ""


def number_text(raw: str) -> str:
    """The shortest decimal form of a stored number (1200.0 -> 1200, 0.1+0.2 -> 0.3)."""
    try:
        value = float(raw)
    except ValueError:
        return raw
    if value != value or value in (float("inf"), float("-inf")):
        return raw
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".15g")


def serial_text(raw: str, kind: Kind, date1904: bool) -> str:
    """An Excel date serial as ISO 8601 (the number itself when it is no date)."""
    try:
        serial = float(raw)
    except ValueError:
        return raw
    if not 0 <= serial <= MAX_SERIAL:
        return number_text(raw)
    if date1904:
        base = datetime(1904, 1, 1)
    elif serial < 60:
        base = datetime(1899, 12, 31)  # before Excel's phantom 1900-02-29
    else:
        base = datetime(1899, 12, 30)
    moment = base + timedelta(days=serial)
    moment = moment.replace(microsecond=0) + timedelta(seconds=round(moment.microsecond / 1e6))
    if kind == "time":
        return moment.time().isoformat()
    if kind == "date" or (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date().isoformat()
    return moment.isoformat()


class _Workbook:
    """What xl/workbook.xml says: the sheets (name, r:id) in order, and the date system."""

    def __init__(self) -> None:
        self.sheets: list[tuple[str, str]] = []
        self.date1904 = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        uri, local = _split(name)
        if uri not in S_NS:
            return
        if local == "workbookPr":
            self.date1904 = attrs.get("date1904", "").lower() in ("1", "true")
        elif local == "sheet":
            rid = next((v for k, v in attrs.items() if k in R_ID), "")
            self.sheets.append((attrs.get("name", ""), rid))


class _SharedStrings:
    """xl/sharedStrings.xml: each `si`'s text (runs joined, `rPh` phonetic guides skipped),
    cut at max_cell_chars while it streams."""

    def __init__(self, limits: Limits) -> None:
        self.strings: list[str] = []
        self._cap = limits.max_cell_chars + 1
        self._current: list[str] = []
        self._size = 0
        self._in_si = False
        self._in_t = False
        self._phonetic = 0

    def start(self, name: str, _attrs: dict[str, str]) -> None:
        uri, local = _split(name)
        if uri not in S_NS:
            return
        if local == "si":
            self._in_si, self._current, self._size = True, [], 0
        elif local == "rPh":
            self._phonetic += 1
        elif local == "t" and self._in_si and not self._phonetic:
            self._in_t = True

    def end(self, name: str) -> None:
        uri, local = _split(name)
        if uri not in S_NS:
            return
        if local == "si":
            self.strings.append("".join(self._current))
            self._in_si = False
        elif local == "rPh":
            self._phonetic -= 1
        elif local == "t":
            self._in_t = False

    def data(self, text: str) -> None:
        if self._in_t and self._size < self._cap:
            text = text[: self._cap - self._size]
            self._current.append(text)
            self._size += len(text)


class _Styles:
    """xl/styles.xml: the number format kind of each cell style (index in `cellXfs`)."""

    def __init__(self) -> None:
        self.kinds: list[Kind] = []
        self._custom: dict[int, Kind] = {}
        self._in_cell_xfs = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        uri, local = _split(name)
        if uri not in S_NS:
            return
        if local == "numFmt":
            try:
                self._custom[int(attrs.get("numFmtId", ""))] = format_kind(attrs.get("formatCode", ""))
            except ValueError:
                pass
        elif local == "cellXfs":
            self._in_cell_xfs += 1
        elif local == "xf" and self._in_cell_xfs:
            try:
                fmt_id = int(attrs.get("numFmtId", "0"))
            except ValueError:
                fmt_id = 0
            self.kinds.append(self._kind(fmt_id))

    def end(self, name: str) -> None:
        uri, local = _split(name)
        if uri in S_NS and local == "cellXfs":
            self._in_cell_xfs -= 1

    def _kind(self, fmt_id: int) -> Kind:
        if fmt_id in self._custom:
            return self._custom[fmt_id]
        if fmt_id in BUILTIN_DATES:
            return "date"
        if fmt_id in BUILTIN_TIMES:
            return "time"
        if fmt_id in BUILTIN_PERCENT:
            return "percent"
        return ""


def _column_of(ref: str) -> int | None:
    match = _CELL_REF.match(ref)
    if match is None:
        return None
    column = 0
    for letter in match.group(1).upper():
        column = column * 26 + ord(letter) - 64
    return column - 1


class _Sheet:
    """A worksheet's `sheetData`, row by row into a TableWriter."""

    def __init__(
        self, writer: TableWriter, strings: list[str], kinds: list[Kind], date1904: bool, limits: Limits
    ) -> None:
        self._writer = writer
        self._strings = strings
        self._kinds = kinds
        self._date1904 = date1904
        self._limits = limits
        self._cap = limits.max_cell_chars + 1
        self._row_number = 0
        self._cells: list[Cell] = []
        self._column = -1
        self._type = ""
        self._style = 0
        self._value: list[str] = []
        self._size = 0
        self._collect = False  # inside a cell's <v> or its inline string's <t>
        self._phonetic = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        uri, local = _split(name)
        if uri not in S_NS:
            return
        if local == "row":
            try:
                self._row_number = int(attrs.get("r", ""))
            except ValueError:
                self._row_number += 1
            self._cells = []
            self._column = -1
        elif local == "c":
            column = _column_of(attrs.get("r", ""))
            self._column = column if column is not None else self._column + 1
            self._type = attrs.get("t", "n")
            try:
                self._style = int(attrs.get("s", "0"))
            except ValueError:
                self._style = 0
            self._value, self._size = [], 0
        elif local == "v" or (local == "t" and self._type == "inlineStr" and not self._phonetic):
            self._collect = True
        elif local == "rPh":
            self._phonetic += 1

    def end(self, name: str) -> None:
        uri, local = _split(name)
        if uri not in S_NS:
            return
        if local in ("v", "t"):
            self._collect = False
        elif local == "rPh":
            self._phonetic -= 1
        elif local == "c":
            cell = self._cell("".join(self._value))
            if cell is not None:
                self._cells.append(cell)
        elif local == "row":
            self._writer.row(self._row_number, self._cells)
            self._cells = []

    def data(self, text: str) -> None:
        if self._collect and self._size < self._cap:
            text = text[: self._cap - self._size]
            self._value.append(text)
            self._size += len(text)

    def _cell(self, raw: str) -> Cell | None:
        kind = self._type
        if not raw:
            return None
        if kind == "s":
            try:
                text = self._strings[int(raw)]
            except (ValueError, IndexError):
                return None
            return Cell(self._column, clip(text, self._limits), True)
        if kind in ("inlineStr", "str"):
            return Cell(self._column, clip(raw, self._limits), True)
        if kind == "b":
            return Cell(self._column, "TRUE" if raw.strip() == "1" else "FALSE", False)
        if kind in ("e", "d"):
            return Cell(self._column, clip(raw, self._limits), False)
        style = self._kinds[self._style] if 0 <= self._style < len(self._kinds) else ""
        if style in ("date", "datetime", "time"):
            return Cell(self._column, serial_text(raw, style, self._date1904), False)
        if style == "percent":
            try:
                return Cell(self._column, number_text(repr(float(raw) * 100)) + " %", False)
            except ValueError:
                pass
        return Cell(self._column, clip(number_text(raw), self._limits), False)


def extract_xlsx(data: bytes, limits: Limits) -> str:
    budget = TextBudget(limits)
    blocks: list[str] = []
    with open_package(data, "xlsx", limits) as package:
        main = package.main_part(DEFAULT_MAIN_PART)
        workbook = _Workbook()
        package.parse(main, workbook.start)
        targets = package.relationship_targets(main)
        strings = _SharedStrings(limits)
        for part in package.related(main, "sharedStrings")[:1]:
            if package.has(part):
                package.parse(part, strings.start, strings.end, strings.data)
        styles = _Styles()
        for part in package.related(main, "styles")[:1]:
            if package.has(part):
                package.parse(part, styles.start, styles.end)
        for sheet_name, rid in workbook.sheets:
            sheet_part = targets.get(rid)
            if sheet_part is None or not package.has(sheet_part):
                continue
            blocks.append(
                _sheet_text(package, sheet_part, sheet_name, strings.strings, styles.kinds, workbook, budget)
            )
    return normalize_text("\n\n".join(block for block in blocks if block))


def _sheet_text(
    package: Package,
    part: str,
    name: str,
    strings: list[str],
    kinds: list[Kind],
    workbook: _Workbook,
    budget: TextBudget,
) -> str:
    label = name or "Sheet"
    writer = TableWriter(label, f'The sheet "{label}"', package.limits, budget)
    sheet = _Sheet(writer, strings, kinds, workbook.date1904, package.limits)
    package.parse(part, sheet.start, sheet.end, sheet.data)
    return writer.text()
