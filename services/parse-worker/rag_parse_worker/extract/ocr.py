"""OCR: Tesseract reads the text of page images (scanned PDF pages, image uploads).

The engine is Tesseract's own C++ API through tesserocr, run inside the extraction
process rather than as the `tesseract` command, because that process may not start
another one (RLIMIT_NPROC 0, see sandbox.py): a command would have to run from the
worker, outside the confinement, on pixels of hostile files. In process, the engine
works under the extraction process's memory and CPU caps, never sees the file's bytes
(only gray pixels our code decoded), and its own deadline (`Recognize(timeout)`) stops a
page that takes too long. The language models are the distribution's packages
(`tesseract-ocr-eng`, ...), found where `locate_tessdata` looks.

Nothing here knows a file format: pdf.py renders pages and image.py decodes images into
`GrayImage`s; `Tesseract.read` turns one into text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tesserocr import PSM, PyTessBaseAPI

from rag_parse_worker.extract.errors import ExtractionTimeout, LimitExceeded

# Where the distributions put the models (Debian and Ubuntu by Tesseract version, Fedora,
# Alpine, Homebrew); TESSDATA_PREFIX, Tesseract's own variable, comes first.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)
# The largest image handed to the engine: an A4 page at 300 dpi is 8.7 M pixels; larger
# scans and photos are scaled down to this (text stays well above the engine's 20 px glyphs).
MAX_OCR_PIXELS = 25_000_000
MIN_DPI, MAX_DPI = 70, 1200
READS_PER_DOCUMENT = 2
# What the worker allows beyond each page's own timeout, for rendering or decoding the page.
PAGE_GRACE_SECONDS = 5.0  # an image's own resolution outside this is not believed


@dataclass(frozen=True, slots=True)
class OcrConfig:
    """How this worker runs OCR (ParseWorkerSettings.ocr_config); sent to each extraction process."""

    languages: str  # Tesseract's form: "eng", "eng+deu"
    tessdata: str  # the directory holding <language>.traineddata
    page_timeout_seconds: float = 30.0
    max_pages: int = 200  # pages (or TIFF frames) read by OCR in one document
    # A document is read by OCR at most twice (its scans, then every page if its text layer
    # turns out garbage: extract.extract), so at most READS_PER_DOCUMENT * max_pages pages.
    dpi: int = 300  # the resolution scanned PDF pages are rendered at


@dataclass(frozen=True, slots=True)
class GrayImage:
    """8-bit gray pixels, `stride` bytes per row (rows may be padded), at `dpi`."""

    pixels: bytes
    width: int
    height: int
    stride: int
    dpi: int


class Ocr(Protocol):
    config: OcrConfig

    def begin_document(self) -> None:
        """A new document: its pages are counted against `config.max_pages` from zero."""
        ...

    def read(self, image: GrayImage, page: int) -> str:
        """The text of one page (1-based `page`, for messages); ExtractionTimeout past the page
        timeout, LimitExceeded past the document's `config.max_pages`th page."""
        ...


def check_page_count(pages: int, config: OcrConfig, what: str) -> None:
    """LimitExceeded before any work when a document has more pages to OCR than one may."""
    if pages > config.max_pages:
        raise LimitExceeded(
            f"{what} has {pages} pages that need OCR, more than the limit of {config.max_pages} per document."
        )


def longest_extraction_seconds(timeout: float, ocr: OcrConfig | None) -> float:
    """How long one extraction may take: `timeout` (PARSE_TIMEOUT_SECONDS), plus each page's
    timeout and PAGE_GRACE_SECONDS for every page it may read by OCR (isolation.py extends
    its deadline page by page)."""
    if ocr is None:
        return timeout
    return timeout + READS_PER_DOCUMENT * ocr.max_pages * (ocr.page_timeout_seconds + PAGE_GRACE_SECONDS)


def fit_scale(width: float, height: float, scale: float) -> float:
    """`scale`, lowered so that the scaled image has at most MAX_OCR_PIXELS."""
    area = width * height * scale * scale
    if area <= MAX_OCR_PIXELS or area <= 0:
        return scale
    return float(scale * (MAX_OCR_PIXELS / area) ** 0.5)


class Tesseract:
    """One engine per extraction process, started at its first page (loading a language
    model takes ~0.2 s and tens of MB, which a process that never meets a scan does not pay).

    `before_page` is called before each page: the extraction process tells the worker,
    which extends its deadline by one page timeout (isolation.py).
    """

    def __init__(self, config: OcrConfig, before_page: Callable[[int], None] | None = None) -> None:
        self.config = config
        self._before_page = before_page
        self._api: PyTessBaseAPI | None = None
        self._pages = 0  # read in this document: an e-mail's attachments share one budget

    def begin_document(self) -> None:
        self._pages = 0

    def _engine(self) -> PyTessBaseAPI:
        if self._api is None:
            self._api = PyTessBaseAPI(path=self.config.tessdata, lang=self.config.languages, psm=PSM.AUTO)
        return self._api

    def read(self, image: GrayImage, page: int) -> str:
        self._pages += 1
        if self._pages > self.config.max_pages:  # several PDFs and images attached to one e-mail
            raise LimitExceeded(
                f"The file has more than {self.config.max_pages} pages that need OCR, the limit per document."
            )
        if self._before_page is not None:
            self._before_page(page)
        api = self._engine()
        api.SetImageBytes(image.pixels, image.width, image.height, 1, image.stride)  # type: ignore[arg-type]
        try:
            api.SetSourceResolution(image.dpi)
            if not api.Recognize(timeout=max(1, round(self.config.page_timeout_seconds * 1000))):
                seconds = f"{self.config.page_timeout_seconds:g}"
                raise ExtractionTimeout(f"Reading page {page} by OCR took longer than {seconds} seconds.")
            return str(api.GetUTF8Text())
        finally:
            api.Clear()


def locate_tessdata(
    environ: Mapping[str, str] = os.environ, directories: Sequence[str] = TESSDATA_DIRS
) -> Path | None:
    """The first directory of TESSDATA_PREFIX and `directories` that holds any model."""
    candidates = [environ["TESSDATA_PREFIX"]] if environ.get("TESSDATA_PREFIX") else []
    for directory in map(Path, [*candidates, *directories]):
        if directory.is_dir() and any(directory.glob("*.traineddata")):
            return directory
    return None


def missing_languages(tessdata: Path, languages: str) -> list[str]:
    """The languages of `languages` ("eng+deu") without a model in `tessdata`."""
    return [lang for lang in languages.split("+") if not (tessdata / f"{lang}.traineddata").is_file()]
