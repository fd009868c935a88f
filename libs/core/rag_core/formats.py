"""What an uploaded file is, decided once for the api and the parse worker alike.

The api refuses at intake what the parse worker could not read (before anything is
stored), and the worker picks its extractor from the same rule, so what one accepts the
other reads. The type comes from the bytes and the name, never from a client's
Content-Type. Pure and linear: only the first HEAD_BYTES are examined, plus a scan for
the Word part that keeps O(1) memory, so the api can run it on a stream and rag_core
needs no parser library.

Supported (docs/contract.md §4): .txt, .md, .html/.htm (text, see `_is_text`), .pdf
(`%PDF-` in the first KB), .csv/.tsv (text), .eml (text whose first line is a header field,
`Name: value`, or an mbox `From ` line), .png, .jpg/.jpeg and .tif/.tiff (by their signatures;
their text is read by OCR), and the Office Open XML packages: Word (.docx and
its macro-enabled and template variants .docm, .dotx, .dotm), PowerPoint (.pptx, .pptm,
.potx, .potm) and Excel (.xlsx, .xlsm, .xltx, .xltm). A package is a zip (`PK\\x03\\x04`)
that names its main part (`word/document.xml`, `ppt/presentation.xml`, `xl/workbook.xml`)
somewhere in the stream: the local headers and the central directory carry member names
in clear. A known binary signature under a text extension is refused.

Packages that are OLE compound files (a password-protected .docx/.pptx/.xlsx is one: the
zip is encrypted inside it; and every legacy .doc/.ppt/.xls) are refused with the sentence
the parse worker would give, so that the user reads the real reason at upload:
`OoxmlScanner` tells them apart by the `EncryptionInfo` stream name, which a compound
file's directory holds in clear. A .doc, .ppt or .xls upload is refused by its name with
the same sentence. `WordScanner` is the scanner for Word files (the api's first user).
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from typing import Literal

Format = Literal["txt", "md", "html", "pdf", "docx", "pptx", "xlsx", "csv", "eml", "png", "jpeg", "tiff"]
OoxmlFormat = Literal["docx", "pptx", "xlsx"]

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
    ".pptx": "pptx",
    ".pptm": "pptx",
    ".potx": "pptx",
    ".potm": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xltx": "xlsx",
    ".xltm": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",  # the dialect is sniffed: tab-separated is one
    ".eml": "eml",
    # Images: read by OCR (the parse worker's OCR_PROVIDER), one page per TIFF frame.
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
}
MIME_TYPES: dict[Format, str] = {
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "eml": "message/rfc822",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
}
BY_MIME_TYPE: dict[str, Format] = {mime: fmt for fmt, mime in MIME_TYPES.items()}
TEXT_FORMATS: frozenset[Format] = frozenset({"txt", "md", "html", "csv", "eml"})
OOXML_FORMATS: frozenset[Format] = frozenset({"docx", "pptx", "xlsx"})
IMAGE_FORMATS: frozenset[Format] = frozenset({"png", "jpeg", "tiff"})
SUPPORTED = ", ".join(BY_EXTENSION)

NOT_A_WORD_DOCUMENT = "The file is not a Word document."
ENCRYPTED_WORD = (
    "The Word document is password-protected and cannot be read. Remove the password and upload it again."
)
LEGACY_DOC = "This is an old Word (.doc) file, which is not supported. Save it as .docx and upload it again."
NOT_A_PRESENTATION = "The file is not a PowerPoint presentation."
ENCRYPTED_PRESENTATION = (
    "The PowerPoint presentation is password-protected and cannot be read. "
    "Remove the password and upload it again."
)
LEGACY_PPT = (
    "This is an old PowerPoint (.ppt) file, which is not supported. Save it as .pptx and upload it again."
)
NOT_A_WORKBOOK = "The file is not an Excel workbook."
ENCRYPTED_WORKBOOK = (
    "The Excel workbook is password-protected and cannot be read. Remove the password and upload it again."
)
LEGACY_XLS = "This is an old Excel (.xls) file, which is not supported. Save it as .xlsx and upload it again."
# The signatures of the image formats (TIFF: little- or big-endian, classic or BigTIFF).
IMAGE_MAGICS: dict[Format, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}
IMAGE_NAMES: dict[Format, str] = {"png": "a PNG", "jpeg": "a JPEG", "tiff": "a TIFF"}
NOT_AN_EMAIL = "The file is named .eml but is not an e-mail message (it does not start with header lines)."

ZIP_MAGIC = b"PK\x03\x04"
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: encrypted OOXML or legacy Office
DOCX_MEMBER = b"word/document.xml"
ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")  # the stream of an encrypted OOXML file


@dataclass(frozen=True, slots=True)
class OoxmlKind:
    """What tells one Office Open XML format from the others, and the user's sentences for it."""

    main_member: bytes  # the main part's name, as the zip's headers spell it
    not_this: str  # a zip (or anything) without that part
    encrypted: str  # a compound file with an EncryptionInfo stream
    legacy: str  # any other compound file: the binary format of the 1997-2003 versions


OOXML: dict[OoxmlFormat, OoxmlKind] = {
    "docx": OoxmlKind(DOCX_MEMBER, NOT_A_WORD_DOCUMENT, ENCRYPTED_WORD, LEGACY_DOC),
    "pptx": OoxmlKind(b"ppt/presentation.xml", NOT_A_PRESENTATION, ENCRYPTED_PRESENTATION, LEGACY_PPT),
    "xlsx": OoxmlKind(b"xl/workbook.xml", NOT_A_WORKBOOK, ENCRYPTED_WORKBOOK, LEGACY_XLS),
}
# The legacy binary formats, refused by name with the sentence their successor's reader gives.
LEGACY_EXTENSIONS: dict[str, str] = {".doc": LEGACY_DOC, ".ppt": LEGACY_PPT, ".xls": LEGACY_XLS}
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
    b"II*\x00",  # TIFF
    b"MM\x00*",
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
# An RFC 5322 header field: a name of printable ASCII without a colon, then a colon.
_HEADER_FIELD = re.compile(rb"[!-9;-~]{1,76}[ \t]*:")


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

    `head` is the first HEAD_BYTES of the file (all of it when `final`). An Office file is
    only a zip or a compound file here: what it holds is OoxmlScanner's answer, over the
    whole file.
    """
    ext = extension(filename)
    fmt = BY_EXTENSION.get(ext)
    if ext in LEGACY_EXTENSIONS:
        return Unsupported(LEGACY_EXTENSIONS[ext])
    if fmt is None:
        shown = ext or "no extension"
        return Unsupported(f"Unsupported file type ({shown}); supported: {SUPPORTED}.")
    if fmt in TEXT_FORMATS:
        if head.startswith(BINARY_MAGICS) or not _is_text(head, final):
            return Unsupported(f"The content of {ext} file is not text (binary data found).")
        if fmt == "eml" and not looks_like_mail(head):
            return Unsupported(NOT_AN_EMAIL)
    elif fmt == "pdf":
        if b"%PDF-" not in head[:PDF_WINDOW]:
            return Unsupported("The file is named .pdf but is not a PDF.")
    elif fmt == "docx" or fmt == "pptx" or fmt == "xlsx":
        if not head.startswith((ZIP_MAGIC, CFB_MAGIC)):  # a compound file: the scanner says why not
            return Unsupported(OOXML[fmt].not_this)
    elif fmt in IMAGE_FORMATS:
        if not head.startswith(IMAGE_MAGICS[fmt]):
            return Unsupported(f"The file is named {ext} but is not {IMAGE_NAMES[fmt]} image.")
    return fmt


def looks_like_mail(head: bytes) -> bool:
    """The first line of a message is a header field (or the `From ` line of an mbox export).

    Checked in ASCII after any UTF-8 mark and leading blank lines: header names are ASCII,
    and a text that merely contains a colon later on is not a message.
    """
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    head = head.lstrip(b"\r\n")
    return head.startswith(b"From ") or _HEADER_FIELD.match(head) is not None


def detect(filename: str, data: bytes) -> Format | Unsupported:
    """`sniff` plus the Office scan, for a file held whole in memory (the parse worker)."""
    verdict = sniff(filename, data[:HEAD_BYTES], len(data) <= HEAD_BYTES)
    if verdict == "docx" or verdict == "pptx" or verdict == "xlsx":
        scanner = OoxmlScanner(verdict)
        scanner.feed(data)
        refusal = scanner.refusal()
        if refusal is not None:
            return refusal
    return verdict


def scanner_for(filename: str) -> OoxmlScanner | None:
    """The scanner an upload of this name needs (None when its format is not an Office one)."""
    fmt = BY_EXTENSION.get(extension(filename))
    if fmt == "docx" or fmt == "pptx" or fmt == "xlsx":
        return OoxmlScanner(fmt)
    return None


class OoxmlScanner:
    """Reads an Office upload as it streams, in O(1) memory: a zip that names the format's
    main part (`word/document.xml`, `ppt/presentation.xml`, `xl/workbook.xml`), or a compound
    file (`EncryptionInfo` named: a password-protected package; else a legacy binary file).
    Names may straddle chunk boundaries."""

    def __init__(self, fmt: OoxmlFormat) -> None:
        self.kind = OOXML[fmt]
        self._keep = max(len(self.kind.main_member), len(ENCRYPTION_INFO)) - 1
        self._first = b""  # the first bytes, for the container's magic
        self._tail = b""
        self.main_part = False  # the main part named (in a zip)
        self.encryption_info = False  # EncryptionInfo named (in a compound file)

    def feed(self, data: bytes) -> None:
        if len(self._first) < len(CFB_MAGIC):
            self._first = (self._first + data)[: len(CFB_MAGIC)]
        window = self._tail + data
        self.main_part = self.main_part or self.kind.main_member in window
        self.encryption_info = self.encryption_info or ENCRYPTION_INFO in window
        self._tail = window[-self._keep :]

    def refusal(self) -> Unsupported | None:
        """Why the whole file is not a readable package of its format, or None when it is one."""
        if self._first.startswith(CFB_MAGIC):
            return Unsupported(self.kind.encrypted if self.encryption_info else self.kind.legacy)
        if not (self._first.startswith(ZIP_MAGIC) and self.main_part):
            return Unsupported(self.kind.not_this)
        return None


class WordScanner(OoxmlScanner):
    """The scanner of a Word upload (the api's name for it, kept)."""

    def __init__(self) -> None:
        super().__init__("docx")


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
