"""Word .docx: paragraphs and tables of the main document part, then its footnotes, endnotes,
comments, headers and footers, read with zipfile + expat.

A .docx is a zip of XML parts. No third-party parser: the part is streamed through
expat (no tree in memory) with these guards:

- decompression bombs: the declared uncompressed size and the compression ratio of the
  part are checked before reading, and the read itself stops at a hard cap (a zip can
  lie about sizes);
- XML attacks: any DTD or entity declaration is refused (a .docx never has one), so
  neither "billion laughs" nor external entities can happen;
- one giant token: expat 2.5 costs super-linear time on a single tag, attribute value or
  comment of tens of MB (about 2 s for 64 MB), so a part in which no parse event happened
  for MAX_TOKEN_BYTES is refused. Text nodes are not tokens of this kind: expat reports
  them as they stream.

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

import io
import posixpath
import zipfile
import zlib
from xml.parsers import expat

from rag_core.formats import CFB_MAGIC, ENCRYPTED_WORD, ENCRYPTION_INFO, LEGACY_DOC
from rag_parse_worker.extract.errors import CorruptFile, EncryptedFile, LimitExceeded, UnsupportedFormat
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text

W_NS = frozenset(
    {
        "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
        "http://purl.oclc.org/ooxml/wordprocessingml/main",  # "Strict" Open XML
    }
)
MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"
OFFICE_DOCUMENT_REL = "/officeDocument"
DEFAULT_MAIN_PART = "word/document.xml"
RELS_PART = "_rels/.rels"
RELS_CAP = 1024 * 1024
# Relationship types (their last path segment) of the parts read after the body, in order.
SECONDARY_PARTS = ("footnotes", "endnotes", "comments", "header", "footer")
READ_CHUNK = 1024 * 1024
MAX_TOKEN_BYTES = 16 * 1024 * 1024


NOT_A_DOCX = "The file is not a valid Word document (.docx)."
BOMB = "The Word document expands to an unreasonable size when unpacked and was not processed."
GIANT_TOKEN = "The Word document contains a single XML element larger than 16 MB and was not processed."


class _Forbidden(Exception):
    pass


def _forbid(*_args: object) -> None:
    raise _Forbidden


def _forbid_external(*_args: object) -> int:
    raise _Forbidden


def _new_parser() -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid_external
    return parser


def _check_member(info: zipfile.ZipInfo, cap: int, limits: Limits) -> None:
    if info.flag_bits & 0x1:
        raise EncryptedFile(ENCRYPTED_WORD)
    if info.file_size > cap:
        raise LimitExceeded(BOMB)
    if info.file_size > limits.docx_ratio_floor_bytes and info.file_size > limits.max_docx_ratio * max(
        info.compress_size, 1
    ):
        raise LimitExceeded(BOMB)


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, parser: expat.XMLParserType) -> int:
    """Feed the member to `parser`, stopping at `cap` bytes whatever the header says; the bytes read."""
    total = 0
    with zf.open(info) as member:
        while chunk := member.read(READ_CHUNK):
            total += len(chunk)
            if total > cap:
                raise LimitExceeded(BOMB)
            parser.Parse(chunk, False)
            # The byte index of the last parse event: far behind what was fed means one
            # token still open (see the module docstring).
            if total - max(parser.CurrentByteIndex, 0) > MAX_TOKEN_BYTES:
                raise LimitExceeded(GIANT_TOKEN)
    parser.Parse(b"", True)
    return total


def _relationships(zf: zipfile.ZipFile, rels_name: str, limits: Limits) -> list[tuple[str, str]]:
    """(type, target) of each internal relationship in a .rels part (none when it is missing)."""
    try:
        info = zf.getinfo(rels_name)
    except KeyError:
        return []
    _check_member(info, RELS_CAP, limits)
    found: list[tuple[str, str]] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if name.endswith(" Relationship") and attrs.get("TargetMode", "Internal") == "Internal":
            found.append((attrs.get("Type", ""), attrs.get("Target", "")))

    parser = _new_parser()
    parser.StartElementHandler = start
    _stream(zf, info, RELS_CAP, parser)
    return found


def _main_part_name(zf: zipfile.ZipFile, limits: Limits) -> str:
    """The officeDocument target from _rels/.rels (almost always word/document.xml)."""
    for kind, target in _relationships(zf, RELS_PART, limits):
        if kind.endswith(OFFICE_DOCUMENT_REL) and target:
            return posixpath.normpath(target.lstrip("/"))
    return DEFAULT_MAIN_PART


def _secondary_parts(zf: zipfile.ZipFile, main: str, limits: Limits) -> list[str]:
    """The main part's footnotes, endnotes, comments, headers and footers, in that order
    (each part once), from its relationships (word/_rels/document.xml.rels)."""
    folder, base = posixpath.split(main)
    related = _relationships(zf, posixpath.join(folder, "_rels", base + ".rels"), limits)
    parts: list[str] = []
    for wanted in SECONDARY_PARTS:
        for kind, target in related:
            if kind.rsplit("/", 1)[-1] == wanted and target:
                name = posixpath.normpath(
                    target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
                )
                if name not in parts and name != main:
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
        self._tables: list[int] = []  # per open table: cells seen in the current row

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
        in_table = bool(self._tables)
        if local == "t":
            self._in_text = True
        elif parent == "r" and local == "tab":
            self._emit(" " if in_table else "\t")
        elif parent == "r" and local in ("br", "cr"):
            self._emit(" " if in_table else "\n")
        elif parent == "r" and local == "noBreakHyphen":
            self._emit("-")
        elif local == "tbl":
            if not in_table:
                self._emit("\n\n")
            self._tables.append(0)
        elif local == "tr" and in_table:
            self._tables[-1] = 0
        elif local == "tc" and in_table:
            if self._tables[-1]:
                self._emit("\t" if len(self._tables) == 1 else " ")
            self._tables[-1] += 1

    def end(self, _name: str) -> None:
        if self._skip:
            self._skip -= 1
            return
        local = self._stack.pop() if self._stack else ""
        if local == "t":
            self._in_text = False
        elif local == "p":
            self._emit(" " if self._tables else "\n\n")
        elif local == "tr" and self._tables:
            self._emit("\n" if len(self._tables) == 1 else " ")
        elif local == "tbl" and self._tables:
            self._tables.pop()
            self._emit(" " if self._tables else "\n\n")

    def data(self, text: str) -> None:
        if self._in_text and not self._skip:
            self._emit(text)


def _refuse_compound_file(data: bytes) -> None:
    """A compound file is no zip: say why, with the sentence the api gives at upload."""
    if not data.startswith(CFB_MAGIC):
        return
    if ENCRYPTION_INFO in data:
        raise EncryptedFile(ENCRYPTED_WORD)
    raise UnsupportedFormat(LEGACY_DOC)


def extract_docx(data: bytes, limits: Limits) -> str:
    _refuse_compound_file(data)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError):
        raise CorruptFile(NOT_A_DOCX) from None
    budget = TextBudget(limits)
    texts: list[str] = []
    try:
        with zf:
            main = _main_part_name(zf, limits)
            try:
                info = zf.getinfo(main)
            except KeyError:
                raise CorruptFile(NOT_A_DOCX) from None
            unpacked = _XmlBudget(limits.max_docx_xml_bytes)  # all parts together
            texts.append(_part_text(zf, info, budget, unpacked, limits))
            for name in _secondary_parts(zf, main, limits):
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    continue  # a dangling relationship: the part is simply not there
                text = _part_text(zf, info, budget, unpacked, limits)
                if text and text not in texts:  # the same header in every section: once
                    texts.append(text)
    except _Forbidden:
        raise CorruptFile(NOT_A_DOCX) from None
    except (
        expat.ExpatError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ):
        # Malformed XML, a bad CRC or deflate stream, an unsupported compression method.
        raise CorruptFile(NOT_A_DOCX) from None
    return "\n\n".join(texts)


class _XmlBudget:
    """The uncompressed XML the parts may add up to (MAX_DOCX_XML_BYTES): a hundred headers
    of the cap each are a bomb too."""

    def __init__(self, cap: int) -> None:
        self.left = cap


def _part_text(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: TextBudget, unpacked: _XmlBudget, limits: Limits
) -> str:
    """One WordprocessingML part's text, normalised (the budgets count every part's)."""
    _check_member(info, unpacked.left, limits)
    body = _BodyText(budget)
    parser = _new_parser()
    parser.StartElementHandler = body.start
    parser.EndElementHandler = body.end
    parser.CharacterDataHandler = body.data
    unpacked.left -= _stream(zf, info, unpacked.left, parser)
    return normalize_text("".join(body.parts))
