"""Is the extracted text text? A garbage detector, so that garbage is never indexed as success.

What garbage looks like, by where it comes from:

- a PDF whose fonts have no usable character map (no ToUnicode, custom encodings), or a scan
  with a broken hidden text layer: glyph names (`/g23`, `(cid:17)`, `/uni0041`), private-use
  characters (U+E000...), or runs of punctuation and single letters (`:., dP . . i,`);
- bytes decoded in the wrong encoding that no rule could recover: U+FFFD replacement characters;
- anything else: few letters and digits among the visible characters.

Combining marks (the vowel signs of the Indic and Southeast Asian scripts, accents written as
separate marks) are removed first: they belong to the letters they sit on.

Measured on a sample (SAMPLES slices of SLICE characters spread over the text, so the cost
is bounded whatever the size) of the visible (non-space) characters. Too little text
(under MIN_VISIBLE) is never judged: a form with "foo 1" is short, not garbage. The
thresholds were set on real files (the parse worker's tests: charset-normalizer's and
python-docx's samples, pypdf's 72 test PDFs): no good text among them comes near a threshold,
and the one garbage text layer in pypdf's corpus (issue-301.pdf) is over two.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass

SAMPLES = 64
SLICE = 4096
MIN_VISIBLE = 40

MAX_REPLACEMENT = 0.02  # U+FFFD among visible characters
MAX_PRIVATE_USE = 0.05
MAX_GLYPH_NAMES = 0.20  # visible characters inside glyph-name tokens
MIN_ALNUM = 0.50  # letters, digits (and math symbols) among visible characters
MIN_IN_WORDS = 0.40  # letters in runs of 3 or more (words; a CJK run counts as one)
MATH = 0.05  # a text with this share of math symbols (x² + y² ∈ ℝ) need not have words

_SPACE = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]")
_ALNUM = re.compile(r"[^\W_]")
_MATH = re.compile("[+=<>±×÷¬∀-⋿⨀-⫿]")  # the ASCII operators and the Mathematical Operators blocks
_WORD = re.compile(r"[^\W\d_]{3,}")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]")
_GLYPH_NAME = re.compile(r"\(cid:\d+\)|/g\d+\b|/uni[0-9A-Fa-f]{4,6}\b|\bglyph\d+\b")


@dataclass(frozen=True, slots=True)
class Quality:
    visible: int  # non-space characters in the sample
    letters: int
    alnum: float
    math: float
    in_words: float
    replacement: float
    private_use: float
    glyph_names: float

    def problem(self, tabular: bool = False) -> str | None:
        """Why this is not text (a short reason for logs and tests), or None when it is.

        `tabular`: rows of a table (a spreadsheet, a CSV, an e-mail that may carry them),
        whose column names and codes (Q1, ID, kg, EUR) are letters outside words by nature;
        the words rule, made for PDF glyph soup, does not apply to them.
        """
        if self.visible < MIN_VISIBLE:
            return None
        if self.replacement > MAX_REPLACEMENT:
            return "replacement characters"
        if self.private_use > MAX_PRIVATE_USE:
            return "private-use characters"
        if self.glyph_names > MAX_GLYPH_NAMES:
            return "glyph names"
        if self.alnum + self.math < MIN_ALNUM:
            return "few letters or digits"
        # A table of figures has no letters, a formula no words: neither is garbage.
        if not tabular and self.letters >= MIN_VISIBLE and self.math < MATH and self.in_words < MIN_IN_WORDS:
            return "letters outside words"
        return None


def sample(text: str) -> str:
    """The text itself, or SAMPLES slices of it spread evenly (bounded cost)."""
    if len(text) <= SAMPLES * SLICE:
        return text
    step = len(text) // SAMPLES
    return "\n".join(text[i * step : i * step + SLICE] for i in range(SAMPLES))


@functools.cache
def _combining_marks() -> re.Pattern[str]:
    """Every combining mark (categories Mn, Mc, Me), as one character class.

    The vowel signs of Devanagari, Bengali, Tamil, Thai... are marks, which `re` does not
    count as letters (\\w), so a Hindi or Bengali word would read as letters cut apart by
    symbols: they are removed before measuring, which leaves each word one run of letters.
    Built once, on first use, from the planes that hold marks (0-1, and 14's variation
    selectors; the others have none): ~30 ms.
    """
    ranges: list[str] = []
    start = previous = -2
    for point in itertools.chain(range(0x20000), range(0xE0000, 0xE1000)):
        if unicodedata.category(chr(point)).startswith("M"):
            if point != previous + 1:
                if start >= 0:
                    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
                start = point
            previous = point
    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
    return re.compile(f"[{''.join(ranges)}]")


def measure(text: str) -> Quality:
    part = _combining_marks().sub("", sample(text))
    visible = _SPACE.sub("", part)
    n = len(visible) or 1
    letters = len(_LETTER.findall(visible))
    return Quality(
        visible=len(visible),
        letters=letters,
        alnum=len(_ALNUM.findall(visible)) / n,
        math=len(_MATH.findall(visible)) / n,
        in_words=sum(len(word) for word in _WORD.findall(part)) / (letters or 1),
        replacement=visible.count("\ufffd") / n,
        private_use=len(_PRIVATE_USE.findall(visible)) / n,
        glyph_names=sum(len(_SPACE.sub("", m)) for m in _GLYPH_NAME.findall(part)) / n,
    )
