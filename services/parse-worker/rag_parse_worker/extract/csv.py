"""CSV and TSV: a table as self-describing row lines (rows.py), with the stdlib csv reader.

Decoded with charset.py's rule (BOM, UTF-16/32 by NULs, UTF-8, detection), then the
dialect is chosen among comma, semicolon, tab and pipe: on a sample of the first
SAMPLE_LINES lines, the delimiter that splits the most lines into the same number (more
than one) of fields wins, ties in that order (a .tsv tries the tab first). Not
csv.Sniffer: its regular expressions backtrack on quote-heavy samples, and it guesses
from characters where counting fields decides.

A cell is "text" (may be a column name, rows.py) unless it reads as a number (1,200.50,
-3, 5 %, 1.2e3). Limits: rows.py's bounds, and the csv reader's field size limit set
explicitly to FIELD_LIMIT characters: past it (an unclosed quote swallowing the rest of
the file, most often) the file is refused with LimitExceeded.
"""

from __future__ import annotations

import csv
import io
import re
from itertools import islice

from rag_parse_worker.extract.charset import decode
from rag_parse_worker.extract.errors import CorruptFile, LimitExceeded
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.rows import Cell, TableWriter, clip

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_LINES = 50
FIELD_LIMIT = 1024 * 1024
_NUMBER = re.compile(r"[-+]?[\d.,' \u00a0\u202f]*\d(?:[eE][-+]?\d+)?\s*%?")

TOO_BIG_FIELD = "The CSV file has a field longer than 1 MB (an unclosed quote?), so it was not processed."


def _looks_numeric(text: str) -> bool:
    return _NUMBER.fullmatch(text.strip()) is not None


def _dialect(text: str, prefer_tab: bool) -> str:
    """The delimiter that splits the sample's lines most consistently (see the module docstring)."""
    sample = "\n".join(islice(io.StringIO(text), SAMPLE_LINES))
    order = ("\t", ",", ";", "|") if prefer_tab else DELIMITERS
    best, best_score = order[0] if prefer_tab else ",", 0
    for delimiter in order:
        counts: dict[int, int] = {}
        try:
            for fields in csv.reader(io.StringIO(sample), delimiter=delimiter):
                if fields:
                    counts[len(fields)] = counts.get(len(fields), 0) + 1
        except csv.Error:
            continue
        score = max((n for width, n in counts.items() if width > 1), default=0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def extract_csv(data: bytes, limits: Limits, *, tab_first: bool = False) -> str:
    text = decode(data).text.replace("\x00", "")
    delimiter = _dialect(text, tab_first)
    budget = TextBudget(limits)
    writer = TableWriter("", "The CSV file", limits, budget)
    csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, fields in enumerate(reader, start=1):
            cells = [
                Cell(column, clip(value, limits), not _looks_numeric(value))
                for column, value in enumerate(fields)
                if value.strip()
            ]
            writer.row(number, cells)
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise LimitExceeded(TOO_BIG_FIELD) from None
        raise CorruptFile("The CSV file could not be read as a table.") from None
    return normalize_text(writer.text())
