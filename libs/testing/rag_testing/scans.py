"""Pages of known text rendered as a scanner or a phone would give them, to measure OCR against.

Rendered here with Pillow's own font (no system font needed), at 300 dpi unless told: the
PDFs hold only an image (no text layer), like a scan. `accuracy` is the character accuracy
that OCR papers report: 1 - Levenshtein distance / length of the truth, on text whose
runs of white space are one space (line breaks are layout, not characters).
"""

from __future__ import annotations

import io
import random
import re

import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from rapidfuzz.distance import Levenshtein

A4_300DPI = (2480, 3508)
FONT_SIZE = 42  # about 10 pt at 300 dpi

PAGES = [
    [
        "Oslo is the capital of Norway and its largest city.",
        "The fjords on the west coast are deep, narrow and cold.",
        "Invoice 2024-117 totals 1,250.00 EUR, due on 31 March.",
    ],
    [
        "Bergen lies between seven mountains on the coast.",
        "The quick brown fox jumps over the lazy dog: 0123456789.",
    ],
    [
        "Scanned contracts need OCR before they can be searched.",
        "Clause 4.2 limits the liability of either party to the fees paid.",
    ],
]


def page_image(
    lines: list[str], size: tuple[int, int] = A4_300DPI, font_size: int = FONT_SIZE
) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    for i, line in enumerate(lines):
        draw.text((size[0] // 12, size[1] // 12 + i * font_size * 2), line, font=font, fill=0)
    return image


def degraded(image: Image.Image, seed: int = 7) -> Image.Image:
    """A poor scan: tilted by 1.5 degrees, blurred, speckled."""
    rng = random.Random(seed)
    tilted = image.rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=255, expand=False)
    blurred = tilted.filter(ImageFilter.GaussianBlur(1.2))
    pixels = blurred.load()
    assert pixels is not None
    for _ in range(blurred.width * blurred.height // 200):
        x, y = rng.randrange(blurred.width), rng.randrange(blurred.height)
        pixels[x, y] = rng.choice((0, 255))
    return blurred


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def scanned_pdf(images: list[Image.Image], dpi: int = 300) -> bytes:
    """A PDF of one image per page and no text layer."""
    first, *rest = [i.copy() for i in images]  # Pillow keeps save options on appended images
    return encode(first, "PDF", resolution=dpi, save_all=True, append_images=rest)


def multipage_tiff(images: list[Image.Image]) -> bytes:
    first, *rest = [i.copy() for i in images]
    return encode(first, "TIFF", save_all=True, append_images=rest, dpi=(300, 300), compression="tiff_lzw")


def merge_pdfs(*documents: bytes) -> bytes:
    """The pages of each document in order (a text page beside scanned ones)."""
    merged = pdfium.PdfDocument.new()
    for data in documents:
        merged.import_pages(pdfium.PdfDocument(data))
    buffer = io.BytesIO()
    merged.save(buffer)
    return buffer.getvalue()


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def accuracy(recognised: str, truth: str) -> float:
    truth, recognised = squash(truth), squash(recognised)
    return 1 - Levenshtein.distance(recognised, truth) / len(truth)


# A ToUnicode map that sends every printable ASCII code to the private-use area: the page
# renders right (the font draws its glyphs) while its text layer is garbage, as with a PDF
# whose fonts carry a wrong or custom character map.
_GARBAGE_CMAP = b"""/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Garbage-UCS def /CMapType 2 def
1 begincodespacerange <00> <FF> endcodespacerange
1 beginbfrange <20> <7E> <E020> endbfrange
endcmap CMapName currentdict /CMap defineresource pop end end"""


def garbage_layer_pdf(lines: list[str]) -> bytes:
    """One page of Helvetica text (ASCII) whose text layer maps to private-use characters."""
    content = b"BT /F1 14 Tf 18 TL 72 720 Td " + b" ".join(
        b"(" + line.encode("ascii") + b") Tj T*" for line in lines
    )
    content += b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding /ToUnicode 6 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Length %d >>\nstream\n" % len(_GARBAGE_CMAP) + _GARBAGE_CMAP + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
