"""Word .docx: paragraphs and tables of the main document part, then its footnotes, endnotes,
comments, headers and footers, read with zipfile + expat.

A .docx is a zip of XML parts, opened with ooxml.py's guard rails (declared size and
ratio of each part before it is read and a hard read cap, no DTD or entity, no giant
token), each part streamed through expat (no tree in memory).

Text model: each paragraph ends with a blank line; in a table, cells are separated by
tabs and rows by line breaks (paragraphs inside a cell are joined by spaces, nested
tables are flattened into their cell). `w:tab` inside a run is a tab, `w:br`/`w:cr` a
line break. Deleted and moved-from revisions are not text; `mc:Fallback` duplicates
`mc:Choice` (text boxes) and is skipped.

Parts: the body first, then the parts the body's relationships name (footnotes, endnotes,
comments, headers, footers, in that order), each as its own block of paragraphs. A header
or footer that is the same in every section appears once. A reader of the page sees them;
a search for a footnote's words must find the document. The ratio and token guards apply
to each part; the uncompressed size cap and the text budget to all of them together.
"""

from __future__ import annotations

from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.ooxml import WORDING, Package, open_package
from rag_parse_worker.extract.tables import TableLayout

W_NS = frozenset(
    {
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
        "http://purl.oclc.org/ooxml/wordprocessingml/main",  # "Strict" Open XML
    }
)
MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
DEFAULT_MAIN_PART = "word/document.xml"
# Relationship types (their last path segment) of the parts read after the body, in order.
SECONDARY_PARTS = ("footnotes", "endnotes", "comments", "header", "footer")

NOT_A_DOCX = WORDING["docx"].invalid
BOMB = WORDING["docx"].bomb
GIANT_TOKEN = WORDING["docx"].giant_token


def _secondary_parts(package: Package, main: str) -> list[str]:
    """The main part's footnotes, endnotes, comments, headers and footers, in that order
    (each part once), from its relationships (word/_rels/document.xml.rels)."""
    related = package.relationships(main)
    parts: list[str] = []
    for wanted in SECONDARY_PARTS:
        for kind, name in related:
            if kind.rsplit("/", 1)[-1] == wanted and name not in parts and name != main:
                parts.append(name)
    return parts


class _BodyText:
    """expat handlers turning WordprocessingML into text (see the module docstring)."""

    def __init__(self, budget: TextBudget) -> None:
        self.parts: list[str] = []
        self._budget = budget
        self._stack: list[str] = []  # local names of open w: elements ("" for other namespaces)
        self._skip = 0  # depth inside a skipped subtree
        self._in_text = False
        self._tables = TableLayout()

    def _emit(self, text: str) -> None:
        self._budget.add(len(text))
        self.parts.append(text)

    def start(self, name: str, _attrs: dict[str, str]) -> None:
        uri, _, local = name.rpartition(" ")
        if self._skip:
            self._skip += 1
            return
        if (uri == MC_NS and local == "Fallback") or (uri in W_NS and local == "moveFrom"):
            self._skip = 1
            return
        parent = self._stack[-1] if self._stack else ""
        if uri not in W_NS:
            self._stack.append("")
            return
        self._stack.append(local)
        in_table = self._tables.inside
        if local == "t":
            self._in_text = True
        elif parent == "r" and local == "tab":
            self._emit(" " if in_table else "\t")
        elif parent == "r" and local in ("br", "cr"):
            self._emit(" " if in_table else "\n")
        elif parent == "r" and local == "noBreakHyphen":
            self._emit("-")
        elif local == "tbl":
            self._emit(self._tables.table_start())
        elif local == "tr":
            self._tables.row_start()
        elif local == "tc":
            self._emit(self._tables.cell_start())

    def end(self, _name: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        local = self._stack.pop() if self._stack else ""
        if local == "t":
            self._in_text = False
        elif local == "p":
            self._emit(" " if self._tables.inside else "\n\n")
        elif local == "tr":
            self._emit(self._tables.row_end())
        elif local == "tbl":
            self._emit(self._tables.table_end())

    def data(self, text: str) -> None:
        if self._in_text and not self._skip:
            self._emit(text)


def extract_docx(data: bytes, limits: Limits) -> str:
    budget = TextBudget(limits)
    texts: list[str] = []
    with open_package(data, "docx", limits) as package:
        main = package.main_part(DEFAULT_MAIN_PART)
        texts.append(_part_text(package, main, budget))
        for name in _secondary_parts(package, main):
            if not package.has(name):
                continue  # a dangling relationship: the part is simply not there
            text = _part_text(package, name, budget)
            if text and text not in texts:  # the same header in every section: once
                texts.append(text)
    return "\n\n".join(texts)


def _part_text(package: Package, name: str, budget: TextBudget) -> str:
    """One WordprocessingML part's text, normalised (the budgets count every part's)."""
    body = _BodyText(budget)
    package.parse(name, body.start, body.end, body.data)
    return normalize_text("".join(body.parts))
