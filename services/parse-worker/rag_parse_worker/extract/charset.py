"""Which encoding a text file (or an HTML page) is in: one rule for both.

In order, each step only when the previous gave no answer:

1. A byte-order mark (UTF-8/16/32): a strong signal, kept even if some bytes are damaged.
2. BOM-less UTF-16 or UTF-32 recognised by its NUL bytes (rag_core.formats, whose upload check
   accepts as text what is decoded here).
3. ASCII, then strict UTF-8. Valid UTF-8 wins over a declaration: text in a legacy
   encoding with non-ASCII bytes is almost never valid UTF-8 by chance, while pages that
   declare `windows-1252` or `shift_jis` and are really UTF-8 are common (a template's
   `<meta>` copied around); decoding them by the declaration gives mojibake or U+FFFD.
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
ASCII = bytes(range(128))
_C1_CONTROLS = re.compile("[\x80-\x9f]")
FALLBACK = "cp1252"
# Labels that mean Windows-1252 in every browser (the WHATWG Encoding Standard).
_WINDOWS_1252_LABELS = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii", "cp819"}


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str  # Python codec name
    how: str  # bom, nuls, ascii, utf-8, declared, detected, fallback


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
    sample = data
    if len(data) > SAMPLE_BYTES:
        cut = data.rfind(b"\n", 0, SAMPLE_BYTES)
        sample = data[: cut + 1 if cut > 0 else SAMPLE_BYTES]
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
