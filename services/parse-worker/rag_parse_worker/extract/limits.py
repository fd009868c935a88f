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
    max_docx_xml_bytes: int = 256 * MB  # uncompressed main part of a .docx
    max_docx_ratio: float = 200.0  # uncompressed / compressed, checked above the floor below
    docx_ratio_floor_bytes: int = 8 * MB


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


def too_much_text(limit: int) -> LimitExceeded:
    return LimitExceeded(f"The extracted text is larger than the {_mb(limit)} limit.")


def check_text_size(text: str, limits: Limits) -> None:
    if len(text) > limits.max_text_bytes or len(text.encode("utf-8")) > limits.max_text_bytes:
        raise too_much_text(limits.max_text_bytes)
