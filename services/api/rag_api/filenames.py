"""The stored name of an uploaded file (docs/contract.md §4): the client's name, made harmless.

Only a label: object keys never contain it, and the file's format is rag_core.formats'
business (its extension is read from this cleaned name).
"""

from __future__ import annotations

import os
import unicodedata

MAX_FILENAME_CHARS = 255


def clean_filename(raw: str) -> str:
    """The client's name without directories or control characters, at most 255 characters.

    `../../etc/passwd.txt` → `passwd.txt`; backslashes count as separators too. May return
    '' (a name made only of separators or dots), which the caller refuses.
    """
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    base = base.strip()
    if set(base) <= {"."}:
        return ""
    if len(base) > MAX_FILENAME_CHARS:
        stem, ext = os.path.splitext(base)
        ext = ext if len(ext) <= 16 else ""
        base = stem[: MAX_FILENAME_CHARS - len(ext)] + ext
    return base
