"""ParseWorkerSettings: the shared worker settings plus the parse worker's guard rails.

Only METRICS_PORT's default (9101) and the variables below are specific to this worker;
see docs/parse-worker.md for the table.
"""

from __future__ import annotations

from pydantic import Field

from rag_core.worker_service import WorkerServiceSettings
from rag_parse_worker.extract import Limits

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

    def job_timeout_seconds(self) -> float:
        """The runtime's backstop for one job: the longest extraction plus time for S3 and Postgres."""
        return self.parse_timeout_seconds + 300

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
        )
