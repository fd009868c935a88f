"""PDF with pypdfium2: Google's PDFium (Apache-2.0/BSD), fast and tolerant of damaged files.

Chosen over pypdf (pure Python: ~10-50x slower on text extraction and weaker on odd
encodings) and PyMuPDF (AGPL, not acceptable here). PDFium is not thread-safe across
documents, so every use holds `_PDFIUM_LOCK`; in the worker each extraction runs in its
own child process anyway (see `isolation.py`), where the lock is uncontended.

Each page is normalised alone and pages are joined with a form feed, so the ingest
worker can number pages; a page without text stays an empty page.
"""

from __future__ import annotations

import threading

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from rag_parse_worker.extract.errors import CorruptFile, EncryptedFile, LimitExceeded
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import join_pages, normalize_text

_PDFIUM_LOCK = threading.Lock()

NOT_A_PDF = "The file is not a valid PDF."
ENCRYPTED = "The PDF is encrypted and cannot be read. Upload a copy without a password."
UNSUPPORTED_SECURITY = "The PDF uses a security handler that is not supported and cannot be read."


def _open(data: bytes) -> pdfium.PdfDocument:
    if b"%PDF-" not in data[:1024]:  # the header may follow some junk, within 1 KB
        raise CorruptFile(NOT_A_PDF)
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        # PDFium's last error is process-global and some failures do not set it: after an
        # encrypted PDF, a damaged one would read as "encrypted" too. So the code counts
        # only with evidence in this file's bytes: encryption needs an /Encrypt entry in the
        # trailer (or the xref stream's dictionary), which is never compressed.
        code = getattr(exc, "err_code", None)
        encrypted = b"/Encrypt" in data
        if code == pdfium_c.FPDF_ERR_PASSWORD and encrypted:
            raise EncryptedFile(ENCRYPTED) from None
        if code == pdfium_c.FPDF_ERR_SECURITY and encrypted:
            raise EncryptedFile(UNSUPPORTED_SECURITY) from None
        raise CorruptFile(NOT_A_PDF) from None


def _page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


def extract_pdf(data: bytes, limits: Limits) -> tuple[str, int]:
    """(text with pages separated by form feeds, page count)."""
    budget = TextBudget(limits)
    with _PDFIUM_LOCK:
        pdf = _open(data)
        try:
            count = len(pdf)
            if count > limits.max_pdf_pages:
                raise LimitExceeded(
                    f"The PDF has {count} pages, more than the limit of {limits.max_pdf_pages} pages."
                )
            if count == 0:
                raise CorruptFile("The PDF has no pages.")
            pages: list[str] = []
            for index in range(count):
                try:
                    raw = _page_text(pdf, index)
                except pdfium.PdfiumError:
                    raw = ""  # one damaged page should not lose the rest of the document
                text = normalize_text(raw)
                budget.add(len(text) + 1)
                pages.append(text)
        finally:
            pdf.close()
    return join_pages(pages), count
