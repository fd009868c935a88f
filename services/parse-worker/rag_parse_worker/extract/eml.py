"""E-mail .eml (RFC 5322 / MIME): the headers, the body, and the attachments it can read, as one document.

Parsed with the stdlib `email` package (policy.default). The text:

    From: Ada Lovelace <ada@example.org>
    To: ...            (To, Cc, Date, Subject: those present, in that order)

    the text/plain body (or, without one, the text/html body through the html extractor)

    Attachment: report.docx
    the attachment's text, read by its own extractor

    Attachment: photo.png (not read: Unsupported file type (.png); ...)

A body part is decoded with the charset its Content-Type declares when the bytes agree,
else by charset.py's detection. An attachment is read when rag_core.formats would accept it
as an upload of its filename (its bytes decide, as at upload); an attached message
(message/rfc822 or a .eml file) is read as an e-mail down to Limits.max_email_depth levels.
A multipart attachment (a digest) is read part by part. An attachment that cannot be
read (unsupported, damaged, a bomb, garbage text of 1000 visible characters or more) is named
with the reason and does not fail the message: the message's own text is still worth
indexing.

Guards, before anything is parsed: at most MAX_CONTAINERS multipart or message/ parts
(counted in the raw bytes: the stdlib parser's cost grows with their nesting depth) and at
most MAX_BOUNDARY_LINES lines starting with "--" (each may open a part; the parser costs
some 40 µs a part). After parsing and before any header is interpreted: no Content-*
header (the ones the parser itself interprets) longer than MAX_CONTENT_HEADER_CHARS;
then at most Limits.max_email_attachments attachments per message. Each is LimitExceeded.
The shown headers are cut at SHOWN_HEADER_CHARS (at an address boundary, marked "…")
before they are interpreted: the stdlib's address parser is not linear (60 KB of
addresses cost 1.7 s), and a header long enough to matter is a mailing list's To.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage, Message

from rag_core.formats import Format, Unsupported, detect, extension
from rag_parse_worker.extract.charset import decode
from rag_parse_worker.extract.errors import CorruptFile, ExtractionError, LimitExceeded
from rag_parse_worker.extract.html import extract_html
from rag_parse_worker.extract.limits import Limits, TextBudget
from rag_parse_worker.extract.normalize import normalize_text
from rag_parse_worker.extract.quality import measure

SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")
UNNAMED_EXTENSIONS = {
    "message/rfc822": ".eml",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/pdf": ".pdf",
}
MIN_JUDGED = 1000  # visible characters of an attachment for it to be judged alone (quality.py)
MAX_CONTAINERS = 200
MAX_BOUNDARY_LINES = 10_000
MAX_CONTENT_HEADER_CHARS = 16 * 1024
SHOWN_HEADER_CHARS = 4096
_CONTAINER = re.compile(rb"content-type:\s*(?:multipart|message)/", re.IGNORECASE)

# Reads an attachment of a supported format other than e-mail: (format, bytes, filename) -> text.
AttachmentReader = Callable[[Format, bytes, str], str]

NOT_A_MESSAGE = "The e-mail message could not be read."
TOO_NESTED = (
    f"The e-mail has more than {MAX_CONTAINERS} nested parts (multipart sections or attached "
    "messages), so it was not processed."
)
TOO_MANY_PARTS = f"The e-mail has more than {MAX_BOUNDARY_LINES} MIME parts, so it was not processed."
LONG_HEADER = "The e-mail has a Content- header longer than 16 KB, so it was not processed."


def _check_raw(data: bytes) -> None:
    if len(_CONTAINER.findall(data)) > MAX_CONTAINERS:
        raise LimitExceeded(TOO_NESTED)
    if data.count(b"\n--") + data.startswith(b"--") > MAX_BOUNDARY_LINES:
        raise LimitExceeded(TOO_MANY_PARTS)


def _check_headers(message: Message) -> None:
    for part in message.walk():
        for name, value in part.raw_items():
            if name.lower().startswith("content-") and len(value) > MAX_CONTENT_HEADER_CHARS:
                raise LimitExceeded(LONG_HEADER)


def _header_lines(message: Message) -> list[str]:
    lines: list[str] = []
    for wanted in SHOWN_HEADERS:
        values = [value for name, value in message.raw_items() if name.lower() == wanted.lower()]
        for raw in values[:1]:
            cut = len(raw) > SHOWN_HEADER_CHARS
            if cut:
                raw = raw[:SHOWN_HEADER_CHARS]
                comma = raw.rfind(",")
                raw = raw[:comma] if comma > 0 and wanted in ("To", "Cc") else raw
            try:
                value = str(email.policy.default.header_factory(wanted, raw))
            except Exception:  # a malformed header is shown as it is written
                value = raw
            value = " ".join(value.split()) + (" …" if cut else "")
            if value:
                lines.append(f"{wanted}: {value}")
    return lines


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: Message) -> str:
    """A text/* part decoded: its declared charset when the bytes agree, else detection."""
    return decode(_payload(part), part.get_content_charset()).text


def _body(message: EmailMessage, limits: Limits) -> tuple[str, Message | None]:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return "", None
    if body.get_content_type() == "text/html":
        return extract_html(_text_of(body).encode("utf-8"), limits), body
    return normalize_text(_text_of(body)), body


def _attachments(message: EmailMessage, body: Message | None) -> list[Message]:
    if not message.is_multipart():
        return []
    found: list[Message] = [part for part in message.iter_attachments() if part is not body]
    return found


def _name_of(part: Message, index: int) -> str:
    name = part.get_filename()
    if name:
        return " ".join(str(name).split())
    # An unnamed part is named by its type, so that a text part is read as text.
    return f"{'message' if part.get_content_type() == 'message/rfc822' else 'attachment'} {index}" + (
        UNNAMED_EXTENSIONS.get(part.get_content_type(), "")
    )


class _Reader:
    def __init__(self, limits: Limits, read_attachment: AttachmentReader) -> None:
        self.limits = limits
        self.read_attachment = read_attachment
        self.budget = TextBudget(limits)  # the whole message, attachments included

    def message(self, message: EmailMessage, depth: int) -> str:
        blocks: list[str] = []
        headers = _header_lines(message)
        if headers:
            blocks.append("\n".join(headers))
        text, body = _body(message, self.limits)
        if text:
            blocks.append(text)
        attachments = _attachments(message, body)
        if len(attachments) > self.limits.max_email_attachments:
            raise LimitExceeded(
                f"The e-mail has more than {self.limits.max_email_attachments} attachments, the limit."
            )
        for index, part in enumerate(attachments, start=1):
            name = _name_of(part, index)
            try:
                content = self.attachment(part, name, depth)
            except ExtractionError as error:
                blocks.append(f"Attachment: {name} (not read: {_reason(error.message)})")
                continue
            self.budget.add(len(content))
            blocks.append(f"Attachment: {name}\n\n{content}" if content else f"Attachment: {name}")
        return "\n\n".join(blocks)

    def attachment(self, part: Message, name: str, depth: int) -> str:
        if (
            part.is_multipart()
            and isinstance(part, EmailMessage)
            and part.get_content_maintype() == "multipart"
        ):
            return self.message(part, depth)  # a container (a digest): its parts, at the same depth
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
                return self.nested(inner[0], depth)
            raise CorruptFile(NOT_A_MESSAGE)
        data = _payload(part)
        verdict = detect(name, data)
        if isinstance(verdict, Unsupported):
            if verdict.message.startswith("Unsupported file type"):
                raise ExtractionError(
                    f"{extension(name) or 'a file without extension'} is not a supported type"
                )
            raise ExtractionError(verdict.message)
        if verdict == "eml":
            _check_raw(data)
            nested = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(nested, EmailMessage)
            _check_headers(nested)
            return self.nested(nested, depth)
        text = self.read_attachment(verdict, data, name)
        quality = measure(text)
        # Judged alone only when large enough to matter: a short footer of underscores is
        # not garbage worth a warning, and the whole message is judged again in the end.
        if quality.visible >= MIN_JUDGED and quality.problem(tabular=verdict in ("xlsx", "csv")) is not None:
            raise ExtractionError("its text is garbled")
        return text

    def nested(self, message: EmailMessage, depth: int) -> str:
        if depth + 1 > self.limits.max_email_depth:
            raise ExtractionError(
                f"an attached message more than {self.limits.max_email_depth} level(s) deep is only named"
            )
        return self.message(message, depth + 1)


def extract_eml(data: bytes, limits: Limits, read_attachment: AttachmentReader, depth: int = 0) -> str:
    """The message's text (see the module docstring); `depth` > 0 for an attached .eml."""
    _check_raw(data)
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        _check_headers(message)
        text = _Reader(limits, read_attachment).message(message, depth)
    except RecursionError:
        raise LimitExceeded(TOO_NESTED) from None
    return normalize_text(text)


def _reason(message: str) -> str:
    """An extractor's sentence as a clause after "not read:" (no final period)."""
    message = message.strip().rstrip(".")
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
