"""Text extraction: bytes of an uploaded file in, normalised text out.

Pure and synchronous (no I/O, no event loop): `isolation.py` runs it in a child
process with a timeout. Every failure is an `ExtractionError` whose `message` a user
can read; they are all permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag_core.formats import IMAGE_FORMATS, Format, Unsupported, detect, extension, format_of_content_type
from rag_parse_worker.extract.csv import extract_csv
from rag_parse_worker.extract.docx import extract_docx
from rag_parse_worker.extract.eml import extract_eml
from rag_parse_worker.extract.errors import (
    CorruptFile,
    EncryptedFile,
    ExtractionError,
    ExtractionTimeout,
    LimitExceeded,
    NoTextFound,
    OcrUnavailable,
    UnreadableText,
    UnsupportedFormat,
)
from rag_parse_worker.extract.html import extract_html
from rag_parse_worker.extract.image import extract_image
from rag_parse_worker.extract.limits import Limits, check_text_size
from rag_parse_worker.extract.normalize import PAGE_SEPARATOR, has_text, normalize_text
from rag_parse_worker.extract.ocr import Ocr, OcrConfig, Tesseract
from rag_parse_worker.extract.pdf import extract_pdf
from rag_parse_worker.extract.pptx import extract_pptx
from rag_parse_worker.extract.quality import measure
from rag_parse_worker.extract.txt import decode_text, extract_txt
from rag_parse_worker.extract.xlsx import extract_xlsx

_NOT_TEXT = "its characters do not form readable text in any encoding that could be recognised"
# What a user reads when the extracted text is garbage (quality.py), by format.
UNREADABLE: dict[Format, str] = {
    "pdf": (
        "The PDF's text layer is garbled (its fonts do not map to real characters, or the hidden "
        "text of a scan is damaged), so nothing was indexed."
    ),
    "docx": "The Word document's text is garbled, so nothing was indexed.",
    "txt": f"The file's text could not be decoded: {_NOT_TEXT}.",
    "md": f"The file's text could not be decoded: {_NOT_TEXT}.",
    "html": f"The page's text could not be decoded: {_NOT_TEXT}.",
    "pptx": "The presentation's text is garbled, so nothing was indexed.",
    "xlsx": "The workbook's cells do not hold readable text, so nothing was indexed.",
    "csv": f"The table's text could not be decoded: {_NOT_TEXT}.",
    "eml": f"The e-mail's text could not be decoded: {_NOT_TEXT}.",
    "png": "OCR found no readable text in the image.",
    "jpeg": "OCR found no readable text in the image.",
    "tiff": "OCR found no readable text in the image.",
}
NO_TEXT_IN_IMAGE = "OCR found no text in the image."


# Formats whose text is (or may hold) table rows, see Quality.problem.
TABULAR: frozenset[Format] = frozenset({"xlsx", "csv", "eml"})


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    format: Format
    page_count: int | None  # PDFs and presentations: pages (slides) are separated by PAGE_SEPARATOR


def detect_format(data: bytes, filename: str = "", content_type: str = "") -> Format:
    """The format the api decided at upload (the document's `content_type`), else rag_core's rule.

    The api stores `MIME_TYPES[format]` of rag_core.formats.sniff, so a stored document
    names its format; a caller without that type (a test, a benchmark) gets the same
    detection the api applies, so nothing is read that an upload would refuse.
    """
    found = format_of_content_type(content_type)
    if found is not None:
        return found
    verdict = detect(filename, data)
    if isinstance(verdict, Unsupported):
        raise UnsupportedFormat(verdict.message)
    return verdict


def extract(
    data: bytes,
    filename: str = "",
    content_type: str = "",
    limits: Limits | None = None,
    ocr: Ocr | None = None,
) -> Extracted:
    """Extract and normalise; raise an ExtractionError when no usable text comes out.

    `ocr` reads scanned PDF pages and images (None: this worker has no OCR). A PDF whose
    text layer is garbage is read again, every page by OCR, before it is refused.
    """
    limits = limits or Limits()
    fmt = detect_format(data, filename, content_type)
    if ocr is not None:
        ocr.begin_document()
    text, page_count = read(fmt, data, filename, limits, ocr)
    if not has_text(text):
        raise NoTextFound(NO_TEXT_IN_IMAGE) if fmt in IMAGE_FORMATS else NoTextFound()
    problem = measure(text).problem(tabular=fmt in TABULAR)
    if problem is not None and fmt == "pdf" and ocr is not None and (page_count or 0) <= ocr.config.max_pages:
        ocr.begin_document()  # the same document again, from its first page
        text, page_count = extract_pdf(data, limits, ocr, every_page=True)
        problem = measure(text).problem() if has_text(text) else "no text"
    if problem is not None:
        raise UnreadableText(UNREADABLE[fmt])
    check_text_size(text, limits)
    return Extracted(text=text, format=fmt, page_count=page_count)


def read(
    fmt: Format, data: bytes, filename: str, limits: Limits, ocr: Ocr | None = None
) -> tuple[str, int | None]:
    """(text, page count) by the format's extractor; an e-mail reads its attachments with this too."""
    if fmt == "pdf":
        return extract_pdf(data, limits, ocr)
    if fmt in IMAGE_FORMATS:
        return extract_image(data, fmt, limits, ocr)
    if fmt == "pptx":
        return extract_pptx(data, limits)
    if fmt == "docx":
        return extract_docx(data, limits), None
    if fmt == "xlsx":
        return extract_xlsx(data, limits), None
    if fmt == "html":
        return extract_html(data, limits), None
    if fmt == "csv":
        return extract_csv(data, limits, tab_first=extension(filename) == ".tsv"), None
    if fmt == "eml":

        def attachment(kind: Format, content: bytes, name: str) -> str:
            return read(kind, content, name, limits, ocr)[0]

        return extract_eml(data, limits, attachment), None
    return extract_txt(data, limits), None


__all__ = [
    "PAGE_SEPARATOR",
    "CorruptFile",
    "EncryptedFile",
    "Extracted",
    "ExtractionError",
    "ExtractionTimeout",
    "LimitExceeded",
    "Limits",
    "NoTextFound",
    "Ocr",
    "OcrConfig",
    "OcrUnavailable",
    "Tesseract",
    "UnreadableText",
    "UnsupportedFormat",
    "decode_text",
    "detect_format",
    "extract",
    "normalize_text",
]
