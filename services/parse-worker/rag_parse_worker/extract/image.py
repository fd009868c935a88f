"""Images (.png, .jpg, .tiff): decoded by Pillow, read by OCR, one page per TIFF frame.

Pillow reads only the header at `open`, so the pixel count is checked before anything
is decoded (a 100,000 x 100,000 PNG of a few KB is refused, not inflated to 10 GB), and
only the upload's own format is tried. Each frame is turned upright (a phone photo's
EXIF orientation), laid on white where it is transparent (text drawn on a transparent
background would otherwise turn black on black), converted to gray and scaled down to
the engine's budget (ocr.MAX_OCR_PIXELS).
"""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageOps, UnidentifiedImageError

from rag_core.formats import IMAGE_NAMES, Format
from rag_parse_worker.extract.errors import CorruptFile, LimitExceeded, OcrUnavailable
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import join_pages, normalize_text
from rag_parse_worker.extract.ocr import MAX_DPI, MIN_DPI, GrayImage, Ocr, check_page_count, fit_scale

PILLOW_FORMATS: dict[Format, str] = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
# Pillow's own bomb check (a warning past 89 M pixels, an error past twice that) is replaced
# by ours, which says the image's size and the configured limit (Limits.max_image_pixels).
Image.MAX_IMAGE_PIXELS = None
NEEDS_OCR = "The file is an image: reading its text needs OCR, which is not available on this worker."


def _dpi(frame: Image.Image, default: int) -> int:
    """The resolution the image says it has, when it is believable."""
    value = frame.info.get("dpi")
    try:
        dpi = round(float(value[0])) if value else 0
    except (TypeError, ValueError, IndexError):
        dpi = 0
    return dpi if MIN_DPI <= dpi <= MAX_DPI else default


def _gray(frame: Image.Image) -> Image.Image:
    upright = ImageOps.exif_transpose(frame) or frame
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        rgba = upright.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        upright = Image.alpha_composite(white, rgba)
    gray = upright.convert("L")
    scale = fit_scale(gray.width, gray.height, 1.0)
    if scale < 1.0:
        size = (max(1, int(gray.width * scale)), max(1, int(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    return gray


def _check_size(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_image_pixels:
        raise LimitExceeded(
            f"The image is {width} x {height} pixels, more than the limit of {limits.max_image_pixels:,} pixels."
        )


def _read_frames(image: Image.Image, limits: Limits, ocr: Ocr) -> list[str]:
    frames = getattr(image, "n_frames", 1)
    check_page_count(frames, ocr.config, "The image")
    budget = TextBudget(limits)
    pages: list[str] = []
    for index in range(frames):
        image.seek(index)
        width, height = image.size
        _check_size(width, height, limits)
        if image.format == "JPEG":  # decoded at 1/2, 1/4 or 1/8 of its size at once when it is huge
            scale = fit_scale(width, height, 1.0)
            image.draft("L", (max(1, int(width * scale)), max(1, int(height * scale))))
        dpi = _dpi(image, ocr.config.dpi)
        gray = _gray(image)
        if gray.width != width:  # scaled down: so is the resolution
            dpi = max(MIN_DPI, round(dpi * gray.width / width))
        text = normalize_text(
            ocr.read(GrayImage(gray.tobytes(), gray.width, gray.height, gray.width, dpi), index + 1)
        )
        budget.add(len(text) + 1)
        pages.append(text)
    return pages


def extract_image(data: bytes, fmt: Format, limits: Limits, ocr: Ocr | None) -> tuple[str, int]:
    """(text of each frame, separated by form feeds; frame count)."""
    if ocr is None:
        raise OcrUnavailable(NEEDS_OCR)
    try:
        with Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[fmt]]) as image:
            pages = _read_frames(image, limits, ocr)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        # What Pillow raises on a damaged or truncated image (SyntaxError: a bad header).
        raise CorruptFile(f"The file is not {IMAGE_NAMES[fmt]} image or it is damaged.") from None
    return join_pages(pages), len(pages)
