"""Guard rails shared by every extractor."""

from __future__ import annotations

from dataclasses import dataclass

from rag_parse_worker.extract.errors import LimitExceeded

MB = 1024 * 1024


def _mb(n: int) -> str:
    return f"{n / MB:g} MB"


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what one document may cost; the defaults suit a 50 MB upload limit."""

    max_text_bytes: int = 20 * MB  # extracted text, UTF-8
    max_pdf_pages: int = 2000
    # Every Office Open XML package (.docx, .pptx, .xlsx; named for the first of them):
    max_docx_xml_bytes: int = 256 * MB  # uncompressed XML of all the parts read, together
    max_docx_ratio: float = 200.0  # uncompressed / compressed per part, checked above the floor below
    docx_ratio_floor_bytes: int = 8 * MB
    max_slides: int = 2000  # a presentation's slides (its pages)
    # Spreadsheets (.xlsx sheets and .csv files): past the first two, LimitExceeded; a longer
    # cell is cut at max_cell_chars and ends with "…" (a long note must not cost the workbook).
    max_sheet_rows: int = 100_000  # non-empty rows per sheet
    max_row_cells: int = 1000  # non-empty cells per row
    max_cell_chars: int = 10_000
    # E-mail (.eml): more attachments than this is LimitExceeded; an attached message is read
    # down to this depth (1: a message attached to the message), deeper ones are only named.
    max_email_attachments: int = 100
    max_email_depth: int = 1
    # Images (uploads and TIFF frames), checked from the header before decoding: 100 M pixels
    # decode to 400 MB at most (RGBA), within the extraction process's memory cap.
    max_image_pixels: int = 100_000_000


class TextBudget:
    """Counts characters as an extractor produces them and stops it past the text limit.

    Counting characters (a lower bound of the UTF-8 size) while extracting keeps a
    pathological file from building gigabytes of text in memory; the exact byte size
    is checked again once the text is normalised.
    """

    def __init__(self, limits: Limits) -> None:
        self.limit = limits.max_text_bytes
        self.used = 0

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise too_much_text(self.limit)


def max_page_count(limits: Limits) -> int:
    """The most pages an extraction may report: PDF pages or slides."""
    return max(limits.max_pdf_pages, limits.max_slides)


def too_much_text(limit: int) -> LimitExceeded:
    return LimitExceeded(f"The extracted text is larger than the {_mb(limit)} limit.")


def check_text_size(text: str, limits: Limits) -> None:
    if len(text) > limits.max_text_bytes or len(text.encode("utf-8")) > limits.max_text_bytes:
        raise too_much_text(limits.max_text_bytes)
