"""What an uploaded file is: decided from its bytes and its name, never the client's Content-Type.

Supported: .txt, .md, .html/.htm (text: UTF-8, UTF-16 with a BOM, or 8-bit text such as
Latin-1 with almost no control bytes; never a NUL byte in the first HEAD_BYTES), .pdf (`%PDF-` in the first KB), .docx (a zip, `PK\\x03\\x04`, that names
`word/document.xml` somewhere in the stream: the local headers and the central directory
carry member names in clear). A known binary signature under a text extension is refused.
"""

from __future__ import annotations

import codecs
import os
import unicodedata
from dataclasses import dataclass

HEAD_BYTES = 8192
MAX_FILENAME_CHARS = 255

TEXT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
}
PDF_TYPE = "application/pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED = ", ".join([*TEXT_TYPES, ".pdf", ".docx"])

ZIP_MAGIC = b"PK\x03\x04"
DOCX_MEMBER = b"word/document.xml"
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
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def clean_filename(raw: str) -> str:
    """The client's name without directories or control characters, at most 255 characters.

    `../../etc/passwd.txt` → `passwd.txt`; backslashes count as separators too. May return
    '' (a name made only of separators or dots), which the caller refuses.
    """
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    base = base.strip()
    if set(base) <= {"."}:
        return ""
    if len(base) > MAX_FILENAME_CHARS:
        stem, ext = os.path.splitext(base)
        ext = ext if len(ext) <= 16 else ""
        base = stem[: MAX_FILENAME_CHARS - len(ext)] + ext
    return base


def extension(filename: str) -> str:
    return os.path.splitext(filename)[1].lower()


@dataclass(frozen=True, slots=True)
class Unsupported:
    message: str


def _is_text(head: bytes, final: bool) -> bool:
    """UTF-8 (or UTF-16 with a BOM) with no NUL; a sequence cut at the window's end is fine."""
    if head.startswith(UTF16_BOMS):
        try:
            codecs.getincrementaldecoder("utf-16")().decode(head, final)
        except UnicodeDecodeError:
            return False
        return True
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final)
    except UnicodeDecodeError:
        # Legacy 8-bit text (Latin-1, Windows-1252) is text too; the parse worker decodes it.
        # Binary data gives itself away by control bytes, which such text hardly has.
        return _control_byte_share(head) <= MAX_CONTROL_SHARE
    return True


MAX_CONTROL_SHARE = 0.01
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\x1b")


def _control_byte_share(data: bytes) -> float:
    if not data:
        return 0.0
    controls = sum(1 for byte in data if (byte < 0x20 and byte not in _TEXT_CONTROLS) or byte == 0x7F)
    return controls / len(data)


def sniff(filename: str, head: bytes, final: bool) -> str | Unsupported:
    """The MIME type of a file from its name and first bytes, or why it is refused.

    `head` is the first HEAD_BYTES of the file (all of it when `final`).
    """
    ext = extension(filename)
    if ext in TEXT_TYPES:
        if head.startswith(BINARY_MAGICS) or not _is_text(head, final):
            return Unsupported(f"The content of {ext} file is not text (binary data found).")
        return TEXT_TYPES[ext]
    if ext == ".pdf":
        if b"%PDF-" not in head[:1024]:
            return Unsupported("The file is named .pdf but is not a PDF.")
        return PDF_TYPE
    if ext == ".docx":
        if not head.startswith(ZIP_MAGIC):
            return Unsupported("The file is named .docx but is not a Word document.")
        return DOCX_TYPE
    shown = ext or "no extension"
    return Unsupported(f"Unsupported file type ({shown}); supported: {SUPPORTED}.")


class DocxScanner:
    """Finds `word/document.xml` in a zip stream, across chunk boundaries, in O(1) memory."""

    def __init__(self) -> None:
        self.found = False
        self._tail = b""

    def feed(self, data: bytes) -> None:
        if self.found:
            return
        keep = len(DOCX_MEMBER) - 1
        if DOCX_MEMBER in self._tail + data[:keep] or DOCX_MEMBER in data:
            self.found = True
            return
        self._tail = (self._tail + data[-keep:])[-keep:]
