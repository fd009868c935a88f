"""Structure-aware chunking of parsed text, in one linear pass.

Why this shape: retrieval works best on passages of a few sentences that stay inside one
section, and citations need to point back into the document. So:

* Boundaries are chosen in order of preference: markdown headings (a new section starts
  a new chunk once the current one has some substance), blank lines (paragraphs), form
  feeds (pages), then sentence ends, then whitespace. A word is never cut, except a single
  "word" longer than a whole chunk (a base64 blob, a URL wall), which is cut at the limit.
* Units are packed greedily up to ``target_chars``; the next chunk repeats the tail of the
  previous one (``overlap_chars``, starting at a sentence start when one is near, else at a
  word start) so a fact straddling a boundary is whole in at least one chunk. No overlap
  is carried across a heading: a new section starts clean.
* Offsets index the original string and chunks carry no leading or trailing whitespace:
  ``text == original[char_start:char_end]`` always holds, and inner whitespace is kept as is.
* Pages: ``page_starts`` (offset where each page starts, first page = 1) when the parser
  knows them, else derived from form feeds (``\\f``) which the parse worker writes between
  pages. A chunk's page is the page of its first character; text without pages gets None.
* ``heading`` is the heading path in force at the chunk's start ("Guide > Install"): cheap
  context to prepend when embedding (``Chunk.embedding_text``), not part of ``text``.

Defaults (800 characters ≈ 170-200 word pieces of English) stay under the 256-piece window
of all-MiniLM-L6-v2, so nothing is silently truncated by the encoder.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TARGET_CHARS = 800
DEFAULT_OVERLAP_CHARS = 120  # 15 %

# Every pattern here is linear however hostile the text (a run of 300,000 dots, a heading
# line of 100,000 "#"), and each is used in ONE left-to-right scan: no pattern may re-scan a
# run from each of its offsets. Possessive quantifiers (``++``, ``*+``) never give back what
# they took, and a lookbehind refuses to start a match inside a run that an earlier start
# already covered; bench/pathological.py measures the shapes.
_LINE = re.compile(r"[^\n\f]*+(?:\n|\f|$)")
# The title is the rest of the line with trailing spaces, tabs and closing "#" stripped in
# Python: ``(.*?)[ \t#]*$`` did the same in the regex and was quadratic on such runs.
_HEADING = re.compile(r" {0,3}(#{1,6})[ \t]++(.*)")
_HEADING_TRAIL = " \t#"
# A sentence ends with . ! ? (or their CJK forms / an ellipsis), maybe closing quotes or
# brackets, then whitespace: the next sentence starts where the whitespace ends. A match
# starts only at the first mark of a run (the lookbehind), so a run is scanned once.
_SENTENCE_END = re.compile(r"(?<![.!?…。！？])[.!?…。！？]++[\"'”’)\]]*+\s++")
_SPACE_THEN_WORD = re.compile(r"\s+(?=\S)")
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage: ``text == original[char_start:char_end]``; ``page`` is 1-based or None."""

    ordinal: int
    text: str
    char_start: int
    char_end: int
    page: int | None
    heading: str | None = None

    @property
    def embedding_text(self) -> str:
        """The text to embed: the heading path first when the chunk does not start with
        it, so a passage deep in a section still knows what the section is about."""
        if self.heading and not self.text.startswith("#"):
            return f"{self.heading}\n{self.text}"
        return self.text


@dataclass(slots=True)
class _Unit:
    start: int
    end: int
    heading: str | None
    is_heading: bool = False


def page_starts_from_form_feeds(text: str) -> list[int]:
    """Offsets where pages start when pages are separated by ``\\f`` ([0] for one page)."""
    return [0] + [m.end() for m in re.finditer("\f", text)]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without surrounding whitespace (start == end when blank)."""
    m = _NON_SPACE.search(text, start, end)
    if m is None:
        return start, start
    start = m.start()
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _blocks(text: str) -> list[tuple[int, int, str | None, bool]]:
    """Paragraphs and heading lines as (start, end, heading path, is_heading), trimmed."""
    out: list[tuple[int, int, str | None, bool]] = []
    path: list[tuple[int, str]] = []  # (level, title) of the open headings
    current: str | None = None
    para_start = -1
    para_end = -1

    def close() -> None:
        nonlocal para_start
        if para_start >= 0:
            out.append((*_trim(text, para_start, para_end), current, False))
            para_start = -1

    for m in _LINE.finditer(text):
        s, e = m.span()
        if s == e:
            break
        line_end = e - 1 if text[e - 1] in "\n\f" else e
        line = text[s:line_end]
        if not line.strip():
            close()
        elif (h := _HEADING.match(line)) is not None:
            close()
            level = len(h.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, h.group(2).rstrip(_HEADING_TRAIL).strip() or h.group(1)))
            current = " > ".join(title for _, title in path)
            out.append((*_trim(text, s, line_end), current, True))
        else:
            if para_start < 0:
                para_start = s
            para_end = line_end
        if text[e - 1] == "\f":
            close()
    close()
    return [b for b in out if b[1] > b[0]]


def _split_long(text: str, start: int, end: int, limit: int, heading: str | None) -> list[_Unit]:
    """Cut a span longer than ``limit`` into sentences, and those into word runs."""
    units: list[_Unit] = []
    sentence_start = start
    bounds = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
    for boundary in [*bounds, end]:
        s, e = _trim(text, sentence_start, boundary)
        sentence_start = boundary
        while e - s > limit:
            cut = max(
                text.rfind(" ", s + 1, s + limit + 1),
                text.rfind("\n", s + 1, s + limit + 1),
                text.rfind("\t", s + 1, s + limit + 1),
            )
            piece_end = cut if cut > s else s + limit  # no space at all: a giant "word"
            ps, pe = _trim(text, s, piece_end)
            if pe > ps:
                units.append(_Unit(ps, pe, heading))
            s, e = _trim(text, piece_end, e)
        if e > s:
            units.append(_Unit(s, e, heading))
    return units


def chunk_text(
    text: str,
    page_starts: Sequence[int] | None = None,
    *,
    target_chars: int = DEFAULT_TARGET_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
) -> list[Chunk]:
    """Chunks of ``text`` in order (ordinals 0, 1, ...); [] for empty or blank text.

    ``target_chars`` is the maximum length of a chunk; ``overlap_chars`` (< target) the most
    a chunk repeats of the previous one. Linear in ``len(text)``.
    """
    if not 0 <= overlap_chars < target_chars:
        raise ValueError("need 0 <= overlap_chars < target_chars")
    if not text or text.isspace():
        return []
    starts = list(page_starts) if page_starts is not None else None
    if starts is None and "\f" in text:
        starts = page_starts_from_form_feeds(text)

    def page_of(offset: int) -> int | None:
        return None if not starts else max(1, bisect.bisect_right(starts, offset))

    chunks: list[Chunk] = []
    cur: list[_Unit] = []  # units of the chunk being packed

    def emit() -> bool:
        """Append ``cur`` as a chunk unless it holds nothing new (only the overlap)."""
        s, e = cur[0].start, cur[-1].end
        if chunks and e <= chunks[-1].char_end:
            return False
        chunks.append(Chunk(len(chunks), text[s:e], s, e, page_of(s), cur[0].heading))
        return True

    def overlap_tail(next_end: int) -> list[_Unit]:
        """Units that start the next chunk: the tail of ``cur`` within the overlap window,
        cut so that the next unit (ending at ``next_end``) still fits."""
        if overlap_chars == 0:
            return []
        end = cur[-1].end
        lo = max(end - overlap_chars, next_end - target_chars, cur[0].start + 1)
        if lo >= end:
            return []
        for i, u in enumerate(cur):  # prefer whole units (paragraphs, sentences)
            if u.start >= lo and not u.is_heading:
                return cur[i:]  # i > 0: lo is past cur[0].start
        # The window lies inside the last unit: start at a sentence start in it, else at a
        # word start.
        last = cur[-1]
        lo = max(lo, last.start)
        # From the unit's start (at most target_chars back), not from ``lo``: a match may only
        # start at the first mark of a run, which can lie before the window.
        for sentence in _SENTENCE_END.finditer(text, last.start, end):
            if sentence.end() >= lo:
                if sentence.end() < end:
                    return [_Unit(sentence.end(), end, last.heading)]
                break
        word = _SPACE_THEN_WORD.search(text, lo - 1, end)
        if word is None or word.end() >= end:
            return []
        return [_Unit(word.end(), end, last.heading)]

    for start, end, heading, is_heading in _blocks(text):
        if is_heading and cur and cur[-1].end - cur[0].start >= target_chars // 4:
            # A new section starts a new chunk once the current one is worth keeping.
            emit()
            cur = []
        if end - start > target_chars:
            units = _split_long(text, start, end, target_chars, heading)
        else:
            units = [_Unit(start, end, heading, is_heading)]
        for unit in units:
            if cur and unit.end - cur[0].start > target_chars:
                # A heading that would end this chunk goes with its section instead.
                carry: list[_Unit] = []
                while len(cur) > 1 and cur[-1].is_heading and unit.end - cur[-1].start <= target_chars:
                    carry.insert(0, cur.pop())
                emitted = emit()
                cur = carry or (overlap_tail(unit.end) if emitted else [])
            cur.append(unit)
    if cur:
        emit()
    return chunks
