"""PowerPoint .pptx (and .pptm, .potx, .potm): the text of each slide and its speaker notes, a page per slide.

Read with ooxml.py's guard rails (every part streamed through expat; no DTD, no bomb, no
giant token). The slides come in the order of the presentation's slide list
(ppt/presentation.xml `p:sldIdLst`), each with the notes slide its relationships name.

Text model, as a reader of the slide sees it:

- every shape with text (title, body and other placeholders, text boxes, shapes inside
  groups, at any depth) is a block: its paragraphs on lines, a blank line after the block;
  `a:br` is a line break;
- a table (`a:tbl`): cells separated by tabs, rows on lines (paragraphs inside a cell are
  joined by spaces); empty cells at the end of a row are dropped, and rows left empty;
- the date, slide-number, footer and header placeholders are furniture and skipped, as are
  the notes page's slide image; `mc:Fallback` duplicates `mc:Choice` and is skipped;
- the speaker notes follow the slide's own text on the same page, after a blank line.

Not read: charts, SmartArt diagrams and embedded objects (other parts, each its own format).

Pages are joined by PAGE_SEPARATOR and `page_count` is the number of slides, as for a PDF,
so a citation can name the slide. More slides than Limits.max_slides is LimitExceeded, said
before any slide is read.
"""

from __future__ import annotations

import re

from rag_parse_worker.extract.errors import LimitExceeded
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import join_pages, normalize_text
from rag_parse_worker.extract.ooxml import Package, open_package
from rag_parse_worker.extract.tables import TableLayout

P_NS = frozenset(
    {
        "http://schemas.openxmlformats.org/presentationml/2006/main",
        "http://purl.oclc.org/ooxml/presentationml/main",
    }
)
A_NS = frozenset(
    {
        "http://schemas.openxmlformats.org/drawingml/2006/main",
        "http://purl.oclc.org/ooxml/drawingml/main",
    }
)
R_ID = frozenset(
    {
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships id",
        "http://purl.oclc.org/ooxml/officeDocument/relationships id",
    }
)
MC_FALLBACK = "http://schemas.openxmlformats.org/markup-compatibility/2006 Fallback"
DEFAULT_MAIN_PART = "ppt/presentation.xml"
# Placeholder types that repeat on every slide or only show the slide itself.
FURNITURE = frozenset({"dt", "sldNum", "ftr", "hdr", "sldImg"})
# Empty cells at the end of a table row (the lookbehind keeps it linear on a run of tabs).
_TRAILING_EMPTY_CELLS = re.compile(r"(?<!\t)\t+(?=\n|\Z)")


def _split(name: str) -> tuple[str, str]:
    uri, _, local = name.rpartition(" ")
    return uri, local


class _SlideText:
    """expat handlers turning a slide (or notes slide) into text (see the module docstring)."""

    def __init__(self, budget: TextBudget) -> None:
        self.parts: list[str] = []
        self._budget = budget
        self._skip = 0  # depth inside a skipped subtree
        self._in_text = False
        self._shape_start: int | None = None  # index in parts where the current p:sp began
        self._furniture = False
        self._tables = TableLayout()

    def _emit(self, text: str) -> None:
        self._budget.add(len(text))
        self.parts.append(text)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if self._skip:
            self._skip += 1
            return
        if name == MC_FALLBACK:
            self._skip = 1
            return
        uri, local = _split(name)
        if uri in P_NS:
            if local == "sp":
                self._shape_start = len(self.parts)
                self._furniture = False
            elif local == "ph" and attrs.get("type") in FURNITURE:
                self._furniture = True
            return
        if uri not in A_NS:
            return
        in_table = self._tables.inside
        if local == "t":
            self._in_text = True
        elif local == "br":
            self._emit(" " if in_table else "\n")
        elif local == "tbl":
            self._emit(self._tables.table_start())
        elif local == "tr":
            self._tables.row_start()
        elif local == "tc":
            self._emit(self._tables.cell_start())

    def end(self, name: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        uri, local = _split(name)
        if uri in P_NS:
            if local == "sp":
                if self._furniture and self._shape_start is not None:
                    del self.parts[self._shape_start :]
                else:
                    self._emit("\n\n")
                self._shape_start = None
                self._furniture = False
            return
        if uri not in A_NS:
            return
        if local == "t":
            self._in_text = False
        elif local == "p":
            self._emit(" " if self._tables.inside else "\n")
        elif local == "tr":
            self._emit(self._tables.row_end())
        elif local == "tbl":
            self._emit(self._tables.table_end())

    def data(self, text: str) -> None:
        if self._in_text and not self._skip:
            self._emit(text)


def _slide_parts(package: Package, main: str) -> list[str]:
    """The slides' part names in the order of the slide list (p:sldIdLst)."""
    targets = package.relationship_targets(main)
    ids: list[str] = []
    in_list = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_list
        uri, local = _split(name)
        if uri in P_NS and local == "sldIdLst":
            in_list += 1
        elif in_list and uri in P_NS and local == "sldId":
            for key, value in attrs.items():
                if key in R_ID:
                    ids.append(value)
            if len(ids) > package.limits.max_slides:
                raise LimitExceeded(
                    f"The presentation has more than {package.limits.max_slides} slides, the limit."
                )

    def end(name: str) -> None:
        nonlocal in_list
        uri, local = _split(name)
        if uri in P_NS and local == "sldIdLst":
            in_list -= 1

    package.parse(main, start, end)
    return [targets[rid] for rid in ids if rid in targets and package.has(targets[rid])]


def _text_of(package: Package, part: str, budget: TextBudget) -> str:
    handler = _SlideText(budget)
    package.parse(part, handler.start, handler.end, handler.data)
    return normalize_text(_TRAILING_EMPTY_CELLS.sub("", normalize_text("".join(handler.parts))))


def extract_pptx(data: bytes, limits: Limits) -> tuple[str, int]:
    """(the slides' text joined by PAGE_SEPARATOR, the number of slides)."""
    budget = TextBudget(limits)
    pages: list[str] = []
    with open_package(data, "pptx", limits) as package:
        main = package.main_part(DEFAULT_MAIN_PART)
        for slide in _slide_parts(package, main):
            text = _text_of(package, slide, budget)
            for notes in package.related(slide, "notesSlide")[:1]:
                if package.has(notes):
                    notes_text = _text_of(package, notes, budget)
                    if notes_text:
                        text = f"{text}\n\n{notes_text}" if text else notes_text
            pages.append(text)
    return join_pages(pages), len(pages)
