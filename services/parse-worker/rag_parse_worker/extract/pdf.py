"""PDF with pypdfium2: Google's PDFium (Apache-2.0/BSD), fast and tolerant of damaged files.

Chosen over pypdf (pure Python: ~10-50x slower on text extraction and weaker on odd
encodings) and PyMuPDF (AGPL, not acceptable here). PDFium is not thread-safe across
documents, so every use holds `_PDFIUM_LOCK`; in the worker each extraction runs in its
own child process anyway (see `isolation.py`), where the lock is uncontended.

Each page is normalised alone and pages are joined with a form feed, so the ingest
worker can number pages; a page without text stays an empty page. A scanned page (an
image and no text layer to speak of, `is_scan`) is rendered in gray and read by OCR.
"""

from __future__ import annotations

import threading

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from rag_parse_worker.extract.errors import CorruptFile, EncryptedFile, LimitExceeded, OcrUnavailable
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import has_text, join_pages, normalize_text
from rag_parse_worker.extract.ocr import GrayImage, Ocr, check_page_count, fit_scale

_PDFIUM_LOCK = threading.Lock()

NOT_A_PDF = "The file is not a valid PDF."
ENCRYPTED = "The PDF is encrypted and cannot be read. Upload a copy without a password."
UNSUPPORTED_SECURITY = "The PDF uses a security handler that is not supported and cannot be read."
SCANNED = "The PDF's pages are scanned images: reading them needs OCR, which is not available on this worker."

# What makes a page a scan (is_scan): visible characters of its text layer, and image coverage.
MIN_PAGE_CHARS = 16
SHORT_PAGE_CHARS = 200
SCAN_COVERAGE = 0.5
IMAGE_DEPTH = 3  # images inside form XObjects inside form XObjects count too


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


def _page_text(page: pdfium.PdfPage) -> str:
    try:
        textpage = page.get_textpage()
    except pdfium.PdfiumError:
        return ""  # a damaged page, as below
    try:
        return str(textpage.get_text_range())
    finally:
        textpage.close()


def _image_coverage(page: pdfium.PdfPage) -> float:
    """The share of the page that images cover (overlaps counted twice; at most 1)."""
    width, height = page.get_size()
    area = float(width * height)
    if area <= 0:
        return 0.0
    covered = 0.0
    for image in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=IMAGE_DEPTH):
        left, bottom, right, top = image.get_bounds()
        covered += max(0.0, right - left) * max(0.0, top - bottom)
        if covered >= area:
            return 1.0
    return covered / area


def is_scan(page: pdfium.PdfPage, text: str) -> bool:
    """A page whose text is in an image: it shows an image and has (nearly) no text layer,
    or an image covers most of it and its text is short (a scanner's stamp, a page number)."""
    visible = len(text) - sum(map(str.isspace, text))
    if visible >= SHORT_PAGE_CHARS:
        return False
    coverage = _image_coverage(page)
    return coverage > 0 and (visible < MIN_PAGE_CHARS or coverage >= SCAN_COVERAGE)


def _render(page: pdfium.PdfPage, dpi: int) -> GrayImage:
    """The page in gray at `dpi`, or less for a page so large that it would pass MAX_OCR_PIXELS."""
    width, height = page.get_size()
    scale = fit_scale(width, height, dpi / 72)
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        return GrayImage(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride, round(72 * scale))
    finally:
        bitmap.close()


def _recognise(pdf: pdfium.PdfDocument, index: int, ocr: Ocr) -> str:
    page = pdf[index]
    try:
        image = _render(page, ocr.config.dpi)
    finally:
        page.close()
    return ocr.read(image, index + 1)


def extract_pdf(
    data: bytes, limits: Limits, ocr: Ocr | None = None, every_page: bool = False
) -> tuple[str, int]:
    """(text with pages separated by form feeds, page count).

    Scanned pages (`is_scan`) are read by `ocr`; `every_page` reads every page by OCR, for
    a document whose text layer is garbage (extract.extract decides). Without OCR, a PDF
    that is only scans is OcrUnavailable; one that also has text pages keeps those.
    """
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
            scans: list[int] = []
            for index in range(count):
                try:
                    page = pdf[index]
                except pdfium.PdfiumError:
                    page = None  # one damaged page should not lose the rest of the document
                text = ""
                if page is not None:
                    try:
                        text = normalize_text(_page_text(page))
                        if every_page or is_scan(page, text):
                            scans.append(index)
                    finally:
                        page.close()
                budget.add(len(text) + 1)
                pages.append(text)
            if scans and ocr is None and not any(map(has_text, pages)):
                raise OcrUnavailable(SCANNED)
            if scans and ocr is not None:
                check_page_count(len(scans), ocr.config, "The PDF")
                for index in scans:
                    text = normalize_text(_recognise(pdf, index, ocr))
                    budget.add(len(text) - len(pages[index]))
                    pages[index] = text
        finally:
            pdf.close()
    return join_pages(pages), count
