"""What an uploaded file is, decided once for the api and the parse worker alike.

The api refuses at intake what the parse worker could not read (before anything is
stored), and the worker picks its extractor from the same rule, so what one accepts the
other reads. The type comes from the bytes and the name, never from a client's
Content-Type. Pure and linear: only the first HEAD_BYTES are examined, plus a scan for
the Word part that keeps O(1) memory, so the api can run it on a stream and rag_core
needs no parser library.

Supported (docs/contract.md §4): .txt, .md, .html/.htm (text, see `_is_text`), .pdf
(`%PDF-` in the first KB), Word: .docx and its macro-enabled and template variants .docm,
.dotx, .dotm (a zip, `PK\\x03\\x04`, that names `word/document.xml` somewhere in the
stream: the local headers and the central directory carry member names in clear). A
known binary signature under a text extension is refused.

Word files that are OLE compound files (a password-protected .docx is one: the zip is
encrypted inside it; and every legacy .doc) are refused with the sentence the parse worker
would give, so that the user reads the real reason at upload: `WordScanner` tells them apart
by the `EncryptionInfo` stream name, which a compound file's directory holds in clear. A
.doc upload is refused by its name with the same sentence.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from typing import Literal

Format = Literal["txt", "md", "html", "pdf", "docx"]

HEAD_BYTES = 8192
PDF_WINDOW = 1024

BY_EXTENSION: dict[str, Format] = {
    ".txt": "txt",
    ".md": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".docm": "docx",  # macro-enabled: the same main part (macros are never run, only text read)
    ".dotx": "docx",  # template
    ".dotm": "docx",  # macro-enabled template
}
MIME_TYPES: dict[Format, str] = {
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
BY_MIME_TYPE: dict[str, Format] = {mime: fmt for fmt, mime in MIME_TYPES.items()}
TEXT_FORMATS: frozenset[Format] = frozenset({"txt", "md", "html"})
SUPPORTED = ", ".join(BY_EXTENSION)

NOT_A_WORD_DOCUMENT = "The file is not a Word document."
ENCRYPTED_WORD = (
    "The Word document is password-protected and cannot be read. Remove the password and upload it again."
)
LEGACY_DOC = "This is an old Word (.doc) file, which is not supported. Save it as .docx and upload it again."

ZIP_MAGIC = b"PK\x03\x04"
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: encrypted .docx or legacy .doc
DOCX_MEMBER = b"word/document.xml"
ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")  # the stream of an encrypted OOXML file
# Signatures of binary formats that must never pass as text, whatever the extension says.
BINARY_MAGICS = (
    b"%PDF-",
    ZIP_MAGIC,
    b"\x89PNG",
    b"GIF8",
    b"\xff\xd8\xff",
    b"\x7fELF",
    b"\x1f\x8b",
    b"MZ",
    b"\xd0\xcf\x11\xe0",  # OLE2: .doc, .xls
)
# UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
UNICODE_SAMPLE_BYTES = 4096
MAX_CONTROL_SHARE = 0.01
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\x1b")
_TEXT_CONTROL_CHARS = frozenset("\t\n\r\f\x1b")


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Why a file is refused: a sentence for the user (the api's 415 message)."""

    message: str


def extension(filename: str) -> str:
    return os.path.splitext(filename)[1].lower()


def format_of_content_type(content_type: str) -> Format | None:
    """The format a content type we produced names (the api stores `MIME_TYPES[format]`)."""
    return BY_MIME_TYPE.get(content_type.split(";", 1)[0].strip().lower())


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when `data` starts with a byte-order mark."""
    for bom, name in BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None


def unicode_without_bom(data: bytes) -> str | None:
    """'utf-32-le'/'-be' or 'utf-16-le'/'-be' when, in the first 4 KB, the NULs fall where
    that encoding puts the zero bytes of ASCII: the three high bytes of each 4-byte unit, or
    one side of each byte pair.

    ASCII in UTF-16 or UTF-32 is otherwise valid UTF-8 full of NULs; binary data has NULs anywhere.
    """
    sample = data[:UNICODE_SAMPLE_BYTES]
    if len(sample) < 4:
        return None
    units = len(sample) // 4
    lanes = [sample[i::4][:units].count(0) for i in range(4)]
    if lanes[0] < units * 0.05 and min(lanes[1:]) > units * 0.9:
        return "utf-32-le"
    if lanes[3] < units * 0.05 and min(lanes[:3]) > units * 0.9:
        return "utf-32-be"
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    pairs = len(sample) // 2
    if odd > pairs * 0.3 and even < pairs * 0.05:
        return "utf-16-le"
    if even > pairs * 0.3 and odd < pairs * 0.05:
        return "utf-16-be"
    return None


def sniff(filename: str, head: bytes, final: bool) -> Format | Unsupported:
    """The format of a file from its name and first bytes, or why it is refused.

    `head` is the first HEAD_BYTES of the file (all of it when `final`). A Word file is only
    a zip or a compound file here: what it holds is WordScanner's answer, over the whole file.
    """
    ext = extension(filename)
    fmt = BY_EXTENSION.get(ext)
    if ext == ".doc":
        return Unsupported(LEGACY_DOC)
    if fmt is None:
        shown = ext or "no extension"
        return Unsupported(f"Unsupported file type ({shown}); supported: {SUPPORTED}.")
    if fmt in TEXT_FORMATS:
        if head.startswith(BINARY_MAGICS) or not _is_text(head, final):
            return Unsupported(f"The content of {ext} file is not text (binary data found).")
    elif fmt == "pdf":
        if b"%PDF-" not in head[:PDF_WINDOW]:
            return Unsupported("The file is named .pdf but is not a PDF.")
    elif not head.startswith((ZIP_MAGIC, CFB_MAGIC)):  # a compound file: WordScanner says why not
        return Unsupported(NOT_A_WORD_DOCUMENT)
    return fmt


def detect(filename: str, data: bytes) -> Format | Unsupported:
    """`sniff` plus the Word scan, for a file held whole in memory (the parse worker)."""
    verdict = sniff(filename, data[:HEAD_BYTES], len(data) <= HEAD_BYTES)
    if verdict == "docx":
        scanner = WordScanner()
        scanner.feed(data)
        refusal = scanner.refusal()
        if refusal is not None:
            return refusal
    return verdict


class WordScanner:
    """Reads a Word upload as it streams, in O(1) memory: a zip that names `word/document.xml`
    (a Word document), or a compound file (`EncryptionInfo` named: a password-protected
    .docx; else a legacy .doc). Names may straddle chunk boundaries."""

    _KEEP = max(len(DOCX_MEMBER), len(ENCRYPTION_INFO)) - 1

    def __init__(self) -> None:
        self._first = b""  # the first bytes, for the container's magic
        self._tail = b""
        self.main_part = False  # word/document.xml named (in a zip)
        self.encryption_info = False  # EncryptionInfo named (in a compound file)

    def feed(self, data: bytes) -> None:
        if len(self._first) < len(CFB_MAGIC):
            self._first = (self._first + data)[: len(CFB_MAGIC)]
        window = self._tail + data
        self.main_part = self.main_part or DOCX_MEMBER in window
        self.encryption_info = self.encryption_info or ENCRYPTION_INFO in window
        self._tail = window[-self._KEEP :]

    def refusal(self) -> Unsupported | None:
        """Why the whole file is not a readable Word document, or None when it is one."""
        if self._first.startswith(CFB_MAGIC):
            return Unsupported(ENCRYPTED_WORD if self.encryption_info else LEGACY_DOC)
        if not (self._first.startswith(ZIP_MAGIC) and self.main_part):
            return Unsupported(NOT_A_WORD_DOCUMENT)
        return None


def _is_text(head: bytes, final: bool) -> bool:
    """Text the parse worker decodes as such; a sequence cut at the window's end is fine.

    In the worker's order (rag_parse_worker.extract.charset): a UTF-16 or UTF-32 byte-order
    mark; BOM-less UTF-16 or UTF-32 that decodes to characters without NUL and with almost no control
    characters; UTF-8 without NUL; else legacy 8-bit text (Latin-1, Windows-1252), which
    binary data gives away by its control bytes.
    """
    found = bom_encoding(head)
    if found is not None and found[0] != "utf-8":  # a UTF-8 mark is UTF-8 text: checked below
        return _decodes(head[found[1] :], found[0], final) is not None
    if b"\x00" in head:
        guess = unicode_without_bom(head)
        text = _decodes(head, guess, final) if guess is not None else None
        return text is not None and "\x00" not in text and _control_char_share(text) <= MAX_CONTROL_SHARE
    if _decodes(head, "utf-8", final) is not None:
        return True
    return _control_byte_share(head) <= MAX_CONTROL_SHARE


def _decodes(data: bytes, codec: str, final: bool) -> str | None:
    try:
        return codecs.getincrementaldecoder(codec)().decode(data, final)
    except UnicodeDecodeError:
        return None


def _control_byte_share(data: bytes) -> float:
    if not data:
        return 0.0
    controls = sum(1 for byte in data if (byte < 0x20 and byte not in _TEXT_CONTROLS) or byte == 0x7F)
    return controls / len(data)


def _control_char_share(text: str) -> float:
    if not text:
        return 0.0
    controls = sum(1 for ch in text if (ch < " " and ch not in _TEXT_CONTROL_CHARS) or ch == "\x7f")
    return controls / len(text)
