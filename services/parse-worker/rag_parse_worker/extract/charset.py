"""Which encoding a text file (or an HTML page) is in: one rule for both.

In order, each step only when the previous gave no answer:

1. A byte-order mark (UTF-8/16/32): a strong signal, kept even if some bytes are damaged.
2. BOM-less UTF-16 or UTF-32 recognised by its NUL bytes (rag_core.formats, whose upload check
   accepts as text what is decoded here).
3. ASCII, then strict UTF-8. Valid UTF-8 wins over a declaration: text in a legacy
   encoding with non-ASCII bytes is almost never valid UTF-8 by chance, while pages that
   declare `windows-1252` or `shift_jis` and are really UTF-8 are common (a template's
   `<meta>` copied around); decoding them by the declaration gives mojibake or U+FFFD.
   UTF-8 with a few stray bytes (a Latin-1 snippet pasted into a UTF-8 page: an ad's script
   comment, an image's alt text) is UTF-8 too: at least MIN_MULTI_BYTE valid multi-byte
   sequences and at most one stray byte per MAX_STRAY_PER_VALID of them, judged on the
   sample of step 5. Legacy text is never that close (on chardet's test files, at most 29%
   of its non-ASCII characters decode as UTF-8 by chance, in EUC-JP; 17% in DOS code pages,
   under 4% in Windows and ISO ones), while reading such a page by detection turns every
   UTF-8 letter into mojibake ("Hauptmenü" as "HauptmenĂĽ"). The stray bytes are read in
   the declared charset when it is a single-byte one, else in Windows-1252.
4. The declared charset (HTML `<meta charset>`), only if the bytes decode with it without
   an error: a declaration the bytes contradict is a lie.
5. Detection with charset-normalizer over a sample (the first SAMPLE_BYTES, cut at a line
   break so that no multi-byte character is split), so that a 50 MB file costs what a
   256 KB one does. Among candidates that explain the bytes equally well (same mess and
   language coherence), Windows-1252 is preferred: it is the most common legacy encoding,
   and what browsers assume. A detection is used when it is confident (see `Detected`).
6. Windows-1252 if the bytes decode with it, else the unconfident detection, else Latin-1
   (which decodes any byte string). The extraction's quality check then refuses what came
   out as garbage.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes
from charset_normalizer.utils import is_multi_byte_encoding

from rag_core.formats import bom_encoding, unicode_without_bom

SAMPLE_BYTES = 256 * 1024
TIE = 0.01  # chaos / coherence differences below this are ties
MIN_COHERENCE = 0.05  # a language was recognised in the decoded sample (0 for short texts)
MIN_MULTI_BYTE = 16  # non-ASCII bytes for a multi-byte decoding to be evidence, not chance
MAX_STRAY_PER_VALID = 10  # nearly UTF-8: at most one stray byte per this many valid sequences
_STRAY = re.compile("[\udc80-\udcff]+")  # bytes that are not UTF-8, as surrogateescape keeps them
ASCII = bytes(range(128))
_C1_CONTROLS = re.compile("[\x80-\x9f]")
FALLBACK = "cp1252"
# Labels that mean Windows-1252 in every browser (the WHATWG Encoding Standard).
_WINDOWS_1252_LABELS = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii", "cp819"}


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str  # Python codec name
    how: str  # bom, nuls, ascii, utf-8, nearly-utf-8, declared, detected, fallback


def decode(data: bytes, declared: str | None = None) -> Decoded:
    """The text of `data`; `declared` is a charset label the document states (HTML)."""
    found = bom_encoding(data)
    if found is not None:
        name, skip = found
        return Decoded(data[skip:].decode(name, errors="replace"), name, "bom")
    if 0 in data[:4096]:
        guess = unicode_without_bom(data)
        if guess is not None:
            try:
                return Decoded(data.decode(guess), guess, "nuls")
            except UnicodeDecodeError:
                pass
    if data.isascii():
        return Decoded(data.decode("ascii"), "ascii", "ascii")
    try:
        return Decoded(data.decode("utf-8"), "utf-8", "utf-8")
    except UnicodeDecodeError:
        pass
    stated = codec_of_label(declared) if declared else None
    nearly = nearly_utf8(data, stray_codec=stated)
    if nearly is not None:
        return Decoded(nearly, "utf-8", "nearly-utf-8")
    if stated is not None:
        try:
            return Decoded(data.decode(stated), stated, "declared")
        except UnicodeDecodeError:
            pass
    detected = detect(data)
    if detected is not None and detected.confident:
        return Decoded(data.decode(detected.encoding, errors="replace"), detected.encoding, "detected")
    try:
        return Decoded(data.decode(FALLBACK), FALLBACK, "fallback")
    except UnicodeDecodeError:
        pass
    if detected is not None and not detected.encoding.startswith(("utf_16", "utf_32")):
        # (An unconfident UTF-16 reading of a few bytes is a fluke: 6 bytes of Latin-1 read
        # as 3 CJK characters.)
        return Decoded(data.decode(detected.encoding, errors="replace"), detected.encoding, "detected")
    return Decoded(data.decode("latin-1"), "latin-1", "fallback")


def nearly_utf8(data: bytes, stray_codec: str | None = None) -> str | None:
    """`data` as UTF-8 when it is UTF-8 but for a few stray bytes (see step 3), else None.

    Judged on the sample detection reads (legacy text has a stray byte in every word: a pass
    over 50 MB of them costs seconds); the stray bytes are then read by `stray_codec` when it
    is a single-byte code page (the page's declaration), else by Windows-1252.
    """
    text = _sample(data).decode("utf-8", "surrogateescape")
    stray = len(text) - len(_STRAY.sub("", text))
    valid = len(text) - len(text.encode("ascii", "ignore")) - stray  # non-ASCII characters decoded
    if valid < MIN_MULTI_BYTE or stray * MAX_STRAY_PER_VALID > valid:
        return None
    codec = stray_codec if stray_codec and not is_multi_byte_encoding(stray_codec) else FALLBACK
    return data.decode("utf-8", errors=_stray_bytes_read_as(codec))


def _stray_bytes_read_as(codec: str) -> str:
    """The name of a decoding error handler that reads the bytes in error by `codec` (registered
    once per code page: the handler registry is process-wide and has no removal)."""
    name = f"rag-stray-bytes-as-{codec}"
    try:
        codecs.lookup_error(name)
    except LookupError:

        def read_stray(error: UnicodeError) -> tuple[str, int]:
            if not isinstance(error, UnicodeDecodeError):
                raise error
            return error.object[error.start : error.end].decode(codec, errors="replace"), error.end

        codecs.register_error(name, read_stray)
    return name


def _sample(data: bytes) -> bytes:
    """The first SAMPLE_BYTES, cut after a line break so that no multi-byte character is split."""
    if len(data) <= SAMPLE_BYTES:
        return data
    cut = data.rfind(b"\n", 0, SAMPLE_BYTES)
    return data[: cut + 1 if cut > 0 else SAMPLE_BYTES]


def codec_of_label(label: str) -> str | None:
    """The Python codec of a declared charset label; None for unknown labels and for UTF-16/32
    (markup that was readable as ASCII-compatible bytes to find the label cannot be UTF-16)."""
    label = label.strip().lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return None if name.startswith(("utf-16", "utf-32")) else name


@dataclass(frozen=True, slots=True)
class Detected:
    encoding: str
    # A multi-byte encoding that decodes the sample (random single-byte text almost never
    # does), or a language recognised in the result. Otherwise (short text, few non-ASCII
    # bytes) detection is a coin toss between code pages: cp1252 is tried first.
    confident: bool


def detect(data: bytes) -> Detected | None:
    """charset-normalizer's best encoding for a sample of `data`, with ties going to cp1252."""
    sample = _sample(data)
    matches = list(from_bytes(sample))
    if not matches:
        return None
    # charset-normalizer ranks by mess first; among candidates about as clean as its best,
    # the one whose letters read most like the language wins (Polish in ISO-8859-2 over the
    # Nordic ISO-8859-10, which differs in a few capitals), and cp1252 wins its ties.
    least_mess = min(match.chaos for match in matches)
    near = [match for match in matches if match.chaos <= least_mess + TIE]
    # C1 controls (U+0080-U+009F) never occur in real text: an ISO-8859 reading that makes
    # them of bytes a Windows code page reads as letters or quotes (cp1252's 0x9C is "œ") is wrong.
    printable = [match for match in near if not _C1_CONTROLS.search(str(match))]
    near = printable or near
    best = max(near, key=lambda match: match.coherence)
    for match in near:
        if FALLBACK in match.could_be_from_charset and match.coherence >= best.coherence - TIE:
            return Detected(FALLBACK, confident=True)
    encoding = str(best.encoding)
    multi_byte = is_multi_byte_encoding(encoding) and len(sample.translate(None, ASCII)) >= MIN_MULTI_BYTE
    return Detected(encoding, confident=multi_byte or best.coherence >= MIN_COHERENCE)
