"""Why a file yields no text. Every one of these is permanent: retrying cannot help.

`message` is shown to users (the document's `error`), so it is a plain sentence that
names the problem in their terms, never a library's exception text.
"""

from __future__ import annotations


class ExtractionError(Exception):
    """The content cannot be turned into text; `code` is stable, `message` is for people."""

    code = "unreadable_file"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class UnsupportedFormat(ExtractionError):
    code = "unsupported_media_type"


class CorruptFile(ExtractionError):
    code = "corrupt_file"


class EncryptedFile(ExtractionError):
    code = "encrypted_file"


class LimitExceeded(ExtractionError):
    code = "limit_exceeded"


class NoTextFound(ExtractionError):
    code = "no_text"

    def __init__(self, message: str = "No text could be extracted from the file.") -> None:
        super().__init__(message)


class UnreadableText(ExtractionError):
    """Text came out, but it is garbage (quality.py): indexing it would only mislead search."""

    code = "unreadable_text"


class OcrUnavailable(ExtractionError):
    """The file's text is only in images, and this worker runs no OCR (OCR_PROVIDER, docs/parse-worker.md)."""

    code = "ocr_unavailable"


class ExtractionTimeout(ExtractionError):
    code = "timeout"
