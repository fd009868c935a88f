"""ParseWorkerSettings: the shared worker settings plus the parse worker's guard rails.

Only METRICS_PORT's default (9101) and the variables below are specific to this worker;
see docs/parse-worker.md for the table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from rag_core.worker_service import WorkerServiceSettings
from rag_parse_worker.extract import Limits, OcrConfig
from rag_parse_worker.extract.ocr import (
    TESSDATA_DIRS,
    locate_tessdata,
    longest_extraction_seconds,
    missing_languages,
)

MB = 1024 * 1024


class ParseWorkerSettings(WorkerServiceSettings):
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    # The api's upload limit (docs/contract.md §3): a larger original is refused, not downloaded.
    max_upload_bytes: int = Field(default=52428800, ge=1)
    parse_timeout_seconds: float = Field(default=120.0, gt=0)
    max_pdf_pages: int = Field(default=2000, ge=1)
    max_parsed_text_bytes: int = Field(default=20 * MB, ge=1)
    max_docx_xml_bytes: int = Field(default=256 * MB, ge=1)
    max_slides: int = Field(default=2000, ge=1)
    max_sheet_rows: int = Field(default=100_000, ge=1)
    max_row_cells: int = Field(default=1000, ge=1)
    max_cell_chars: int = Field(default=10_000, ge=1)
    max_email_attachments: int = Field(default=100, ge=0)
    max_email_depth: int = Field(default=1, ge=0)
    # Address-space cap of each extraction process (0: none); past it the file fails with a clear error.
    parse_memory_limit_mb: int = Field(default=2048, ge=0)
    max_image_pixels: int = Field(default=100_000_000, ge=1)
    # OCR of scanned PDF pages and images: None (unset) means tesseract when its models are installed.
    ocr_provider: Literal["tesseract", "off"] | None = None
    ocr_languages: str = Field(default="eng", pattern=r"^[A-Za-z0-9_]{1,40}(\+[A-Za-z0-9_]{1,40}){0,9}$")
    ocr_page_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    ocr_max_pages: int = Field(default=200, ge=1)
    ocr_dpi: int = Field(default=300, ge=72, le=600)

    def ocr_config(
        self, environ: Mapping[str, str] = os.environ, directories: Sequence[str] = TESSDATA_DIRS
    ) -> OcrConfig | None:
        """The OCR this worker runs, or None; ValueError when OCR_PROVIDER=tesseract cannot run.

        Unset, OCR is on where the models of OCR_LANGUAGES are installed and off elsewhere
        (documents that need it then fail with "OCR is not available on this worker").
        """
        if self.ocr_provider == "off":
            return None
        tessdata = locate_tessdata(environ, directories)
        missing = (
            missing_languages(tessdata, self.ocr_languages) if tessdata else self.ocr_languages.split("+")
        )
        if tessdata is None or missing:
            if self.ocr_provider is None:
                return None
            where = f"in {tessdata}" if tessdata else "(no tessdata directory found; set TESSDATA_PREFIX)"
            raise ValueError(
                f"OCR_PROVIDER=tesseract but no Tesseract model for {'+'.join(missing)} is installed {where}; "
                f"install tesseract-ocr-{missing[0]} (Debian, Ubuntu) or set OCR_PROVIDER=off"
            )
        return OcrConfig(
            languages=self.ocr_languages,
            tessdata=str(tessdata),
            page_timeout_seconds=self.ocr_page_timeout_seconds,
            max_pages=self.ocr_max_pages,
            dpi=self.ocr_dpi,
        )

    def job_timeout_seconds(self, ocr: OcrConfig | None) -> float:
        """The runtime's backstop for one job: the longest extraction plus time for S3 and Postgres."""
        return longest_extraction_seconds(self.parse_timeout_seconds, ocr) + 300

    def limits(self) -> Limits:
        return Limits(
            max_text_bytes=self.max_parsed_text_bytes,
            max_pdf_pages=self.max_pdf_pages,
            max_docx_xml_bytes=self.max_docx_xml_bytes,
            max_slides=self.max_slides,
            max_sheet_rows=self.max_sheet_rows,
            max_row_cells=self.max_row_cells,
            max_cell_chars=self.max_cell_chars,
            max_email_attachments=self.max_email_attachments,
            max_email_depth=self.max_email_depth,
            max_image_pixels=self.max_image_pixels,
        )
