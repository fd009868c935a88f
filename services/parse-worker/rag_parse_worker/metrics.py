"""The parse worker's own metrics, beside the job runtime's (rag_jobs_*, rag_worker_wakeups_total)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DOCUMENTS = Counter(
    "rag_parse_documents_total",
    "Documents through extraction, by detected format and outcome (parsed or an error code)",
    ["format", "outcome"],
)
EXTRACT_SECONDS = Histogram(
    "rag_parse_extract_seconds",
    "Time spent extracting text (in the extraction process), by format",
    ["format"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
BYTES = Counter(
    "rag_parse_bytes_total", "Bytes downloaded (original) and uploaded (parsed text)", ["direction"]
)
PAGES = Counter("rag_parse_pdf_pages_total", "PDF pages extracted")
OCR_PAGES = Counter("rag_parse_ocr_pages_total", "Pages (scanned PDF pages, image frames) read by OCR")
EXTRACTOR_RESTARTS = Counter(
    "rag_parse_extractor_restarts_total",
    "Extraction processes replaced, by reason (timeout, crash, cancelled)",
    ["reason"],
)
