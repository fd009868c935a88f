"""OCR on pages rendered from known text (tests/scans.py), with the real engine and models.

Accuracy is measured, not eyeballed: the bounds below sit under what this engine reads on
these pages (1.000 clean, 0.992 on a tilted, blurred, speckled scan, 0.98 on a JPEG of
quality 50) with room for another build of the models, and far above what a broken
pipeline gives (a wrong resolution, colour order or stride reads as garbage, < 0.5).
"""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from rag_parse_worker.extract import (
    CorruptFile,
    ExtractionTimeout,
    LimitExceeded,
    Limits,
    NoTextFound,
    OcrUnavailable,
    Tesseract,
    UnreadableText,
    extract,
)
from rag_parse_worker.extract.ocr import MAX_OCR_PIXELS, GrayImage
from rag_testing import scans

from .builders import make_eml, make_pdf
from .conftest import ocr_config

FIXTURES = Path(__file__).parent / "fixtures"
TRUTH = [" ".join(page) for page in scans.PAGES]
IMAGES = [scans.page_image(page) for page in scans.PAGES]


class Recording:
    """The real engine, noting what it was given."""

    def __init__(self, engine: Tesseract) -> None:
        self.engine = engine
        self.config = engine.config
        self.images: list[GrayImage] = []
        self.pages: list[int] = []

    def begin_document(self) -> None:
        self.engine.begin_document()

    def read(self, image: GrayImage, page: int) -> str:
        self.images.append(image)
        self.pages.append(page)
        return self.engine.read(image, page)


def pages_of(text: str) -> list[str]:
    return text.split("\f")


# -- what a user uploads ---------------------------------------------------------


def test_a_scanned_pdf_is_read_page_by_page(ocr: Tesseract) -> None:
    result = extract(scans.scanned_pdf(IMAGES), "contract.pdf", ocr=ocr)
    assert result.format == "pdf" and result.page_count == 3
    pages = pages_of(result.text)
    assert len(pages) == 3
    for page, truth in zip(pages, TRUTH, strict=True):
        assert scans.accuracy(page, truth) >= 0.98, page


def test_a_poor_scan_is_still_read(ocr: Tesseract) -> None:
    data = scans.scanned_pdf([scans.degraded(image) for image in IMAGES])
    result = extract(data, "fax.pdf", ocr=ocr)
    assert scans.accuracy(result.text, " ".join(TRUTH)) >= 0.95


def test_a_scan_at_150_dpi_is_rendered_at_the_configured_resolution(ocr: Tesseract) -> None:
    small = [image.resize((image.width // 2, image.height // 2)) for image in IMAGES]
    recording = Recording(ocr)
    result = extract(scans.scanned_pdf(small, dpi=150), "small.pdf", ocr=recording)
    assert scans.accuracy(result.text, " ".join(TRUTH)) >= 0.98
    assert {image.dpi for image in recording.images} == {300}  # rendered at OCR_DPI, as a scanner would
    assert recording.images[0].width == pytest.approx(2480, abs=2)


@pytest.mark.parametrize(
    ("name", "fmt", "options"),
    [
        ("scan.png", "PNG", {"dpi": (300, 300)}),
        ("scan.jpg", "JPEG", {"quality": 50}),
        ("scan.tiff", "TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_an_image_upload_is_read(ocr: Tesseract, name: str, fmt: str, options: dict[str, object]) -> None:
    image = IMAGES[0].convert("RGB") if fmt == "JPEG" else IMAGES[0]
    result = extract(scans.encode(image.copy(), fmt, **options), name, ocr=ocr)
    assert result.page_count == 1
    assert scans.accuracy(result.text, TRUTH[0]) >= 0.98, result.text


def test_a_multipage_tiff_is_a_page_per_frame(ocr: Tesseract) -> None:
    result = extract(scans.multipage_tiff(IMAGES), "fax.tif", ocr=ocr)
    assert result.format == "tiff" and result.page_count == 3
    for page, truth in zip(pages_of(result.text), TRUTH, strict=True):
        assert scans.accuracy(page, truth) >= 0.98


def test_a_phone_photo_is_turned_upright_and_a_transparent_background_is_white(ocr: Tesseract) -> None:
    # EXIF orientation 6: the camera was held sideways, the pixels are stored rotated.
    sideways = IMAGES[0].rotate(90, expand=True).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = extract(scans.encode(sideways, "JPEG", exif=exif, quality=90), "photo.jpg", ocr=ocr)
    assert scans.accuracy(photo.text, TRUTH[0]) >= 0.98, photo.text
    # Black text on a transparent background: read as black on white, not black on black.
    rgba = Image.new("RGBA", IMAGES[0].size, (0, 0, 0, 0))
    rgba.putalpha(IMAGES[0].point(lambda v: 255 - v))
    logo = extract(scans.encode(rgba, "PNG"), "logo.png", ocr=ocr)
    assert scans.accuracy(logo.text, TRUTH[0]) >= 0.98, logo.text


def test_only_scanned_pages_go_to_ocr_and_text_pages_keep_their_text(ocr: Tesseract) -> None:
    text_page = make_pdf([["A typed page with a real text layer."]])
    blank = make_pdf([[]])
    data = scans.merge_pdfs(text_page, scans.scanned_pdf(IMAGES[:1]), blank, scans.scanned_pdf(IMAGES[1:2]))
    recording = Recording(ocr)
    result = extract(data, "mixed.pdf", ocr=recording)
    pages = pages_of(result.text)
    assert result.page_count == 4 and len(pages) == 4
    assert pages[0] == "A typed page with a real text layer."
    assert scans.accuracy(pages[1], TRUTH[0]) >= 0.98
    assert pages[2] == ""  # a blank page has no image: it is not sent to OCR
    assert scans.accuracy(pages[3], TRUTH[1]) >= 0.98
    assert recording.pages == [2, 4]


def test_a_garbage_text_layer_is_read_again_by_ocr() -> None:
    """A scan whose hidden text layer is garbage (pypdf's issue-301.pdf): without OCR it is
    refused as garbled; with OCR the page is read from its pixels. That page is graph paper
    with a sketch: OCR finds no text there, and says so. A grid is the engine's worst case
    (about 30 CPU seconds at 300 dpi on this machine), so this test renders at 150 dpi."""
    data = (FIXTURES / "pdf" / "issue-301.pdf").read_bytes()
    with pytest.raises(UnreadableText):
        extract(data, "issue-301.pdf")
    with pytest.raises(NoTextFound):
        extract(data, "issue-301.pdf", ocr=Tesseract(ocr_config(dpi=150, page_timeout_seconds=600)))


def test_a_pdf_whose_fonts_map_to_garbage_is_rescued_by_ocr(ocr: Tesseract) -> None:
    """The page renders right but its text layer is private-use garbage (a wrong character
    map): refused without OCR; with OCR every page is read again from its pixels."""
    data = scans.merge_pdfs(scans.garbage_layer_pdf(scans.PAGES[0] * 4), scans.scanned_pdf(IMAGES[1:2]))
    with pytest.raises(UnreadableText):
        extract(data, "fonts.pdf")
    recording = Recording(ocr)
    result = extract(data, "fonts.pdf", ocr=recording)
    assert recording.pages == [2, 1, 2]  # the scan, then every page again
    first, second = pages_of(result.text)
    assert scans.accuracy(first, " ".join(TRUTH[0] for _ in range(4))) >= 0.97, first
    assert scans.accuracy(second, TRUTH[1]) >= 0.98


def test_an_image_attached_to_an_email_is_read_with_it(ocr: Tesseract) -> None:
    png = scans.encode(IMAGES[0], "PNG")
    mail = make_eml("See the scanned letter.", attachments=[("letter.png", "image/png", png)])
    result = extract(mail, "mail.eml", ocr=ocr)
    assert "See the scanned letter." in result.text
    assert "Attachment: letter.png" in result.text
    assert "Oslo is the capital of Norway" in result.text


# -- without OCR -------------------------------------------------------------------


def test_without_ocr_a_scan_is_a_clear_error_and_text_pages_are_kept() -> None:
    with pytest.raises(OcrUnavailable) as scanned:
        extract(scans.scanned_pdf(IMAGES), "contract.pdf")
    assert scanned.value.code == "ocr_unavailable"
    assert "not available on this worker" in scanned.value.message
    with pytest.raises(OcrUnavailable):
        extract(scans.encode(IMAGES[0], "PNG"), "scan.png")
    mixed = scans.merge_pdfs(make_pdf([["A typed page."]]), scans.scanned_pdf(IMAGES[:1]))
    result = extract(mixed, "mixed.pdf")
    assert pages_of(result.text) == ["A typed page.", ""]


# -- abuse -------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels and holds one compressed row: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


def test_an_image_bomb_is_refused_from_its_header(ocr: Tesseract) -> None:
    started = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        extract(png_header_only(100_000, 100_000), "bomb.png", ocr=ocr)
    assert info.value.message == (
        "The image is 100000 x 100000 pixels, more than the limit of 100,000,000 pixels."
    )
    assert time.perf_counter() - started < 5  # nothing was decoded


def test_a_large_image_is_scaled_down_for_the_engine(ocr: Tesseract) -> None:
    big = scans.page_image(scans.PAGES[0], size=(7000, 9000), font_size=110)
    recording = Recording(ocr)
    result = extract(scans.encode(big, "PNG"), "poster.png", ocr=recording)
    (image,) = recording.images
    assert image.width * image.height <= MAX_OCR_PIXELS
    assert scans.accuracy(result.text, TRUTH[0]) >= 0.98


def test_a_huge_pdf_page_is_rendered_within_the_pixel_budget(ocr: Tesseract) -> None:
    """A 200-inch page at 300 dpi would be 3.6 G pixels."""
    page = Image.new("L", (2000, 2000), 255)
    data = scans.scanned_pdf([page], dpi=10)  # 2000 px at 10 dpi: a 200 x 200 inch page
    recording = Recording(ocr)
    with pytest.raises(NoTextFound):
        extract(data, "poster.pdf", ocr=recording)
    (image,) = recording.images
    assert image.width * image.height <= MAX_OCR_PIXELS


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("cut.png", scans.encode(IMAGES[0], "PNG")[:5000], "The file is not a PNG image or it is damaged."),
        ("junk.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "The file is not a PNG image or it is damaged."),
        (
            "cut.jpg",
            scans.encode(IMAGES[0].convert("RGB"), "JPEG")[:300],
            "The file is not a JPEG image or it is damaged.",
        ),
        ("junk.tiff", b"II*\x00" + b"\xff" * 64, "The file is not a TIFF image or it is damaged."),
    ],
)
def test_a_damaged_image_is_a_clear_error(ocr: Tesseract, name: str, data: bytes, message: str) -> None:
    with pytest.raises(CorruptFile) as info:
        extract(data, name, ocr=ocr)
    assert info.value.message == message


def test_pages_to_ocr_are_bounded_per_document() -> None:
    few = Tesseract(ocr_config(max_pages=2))
    with pytest.raises(LimitExceeded) as pdf:
        extract(scans.scanned_pdf(IMAGES), "long.pdf", ocr=few)
    assert pdf.value.message == "The PDF has 3 pages that need OCR, more than the limit of 2 per document."
    with pytest.raises(LimitExceeded) as tiff:
        extract(scans.multipage_tiff(IMAGES), "long.tiff", ocr=few)
    assert tiff.value.message == "The image has 3 pages that need OCR, more than the limit of 2 per document."
    # Several attachments share the document's budget.
    png = scans.encode(IMAGES[0], "PNG")
    mail = make_eml("Three scans.", attachments=[(f"p{i}.png", "image/png", png) for i in range(3)])
    result = extract(mail, "mail.eml", ocr=few)
    assert (
        "Attachment: p2.png (not read: the file has more than 2 pages that need OCR, the limit per document)"
        in result.text
    )
    assert "Attachment: p1.png\n" in result.text


def test_a_page_over_its_timeout_is_stopped_with_a_clear_error() -> None:
    hasty = Tesseract(ocr_config(page_timeout_seconds=0.001))
    started = time.perf_counter()
    with pytest.raises(ExtractionTimeout) as info:
        extract(scans.scanned_pdf(IMAGES), "slow.pdf", ocr=hasty)
    assert info.value.message == "Reading page 1 by OCR took longer than 0.001 seconds."
    assert time.perf_counter() - started < 10


def test_an_image_with_no_text_says_so(ocr: Tesseract) -> None:
    photo = Image.effect_mandelbrot((1200, 900), (-2.0, -1.2, 1.0, 1.2), 60)
    with pytest.raises((NoTextFound, UnreadableText)) as info:
        extract(scans.encode(photo, "PNG"), "fractal.png", ocr=ocr)
    assert info.value.message in (
        "OCR found no text in the image.",
        "OCR found no readable text in the image.",
    )


def test_the_text_limit_counts_ocr_text(ocr: Tesseract) -> None:
    with pytest.raises(LimitExceeded):
        extract(scans.scanned_pdf(IMAGES), "big.pdf", limits=Limits(max_text_bytes=100), ocr=ocr)


def test_an_engine_is_reused_across_documents(ocr: Tesseract) -> None:
    data = scans.encode(IMAGES[1], "PNG")
    first = extract(data, "a.png", ocr=ocr).text
    again = extract(data, "b.png", ocr=ocr).text
    assert first == again and scans.accuracy(first, TRUTH[1]) >= 0.98


def test_the_resolution_an_image_claims_is_believed_only_when_plausible(ocr: Tesseract) -> None:
    recording = Recording(ocr)
    for dpi, used in ((200, 200), (5, 300), (100000, 300)):
        extract(scans.encode(IMAGES[1], "PNG", dpi=(dpi, dpi)), "a.png", ocr=recording)
        assert recording.images[-1].dpi == used
