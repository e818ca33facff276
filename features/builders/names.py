"""Feature names made from arbitrary text (customer attribute names and category values).

A customer attribute's name and its category values come from the user's data and may hold any
character: ``"7) $1,000 +"``, ``"Bank transfer (automatic)"``, ``"Zürich"``, ``"東京"``. They become column
names of the feature table, keys of JSON responses and MLflow artifacts, and LightGBM refuses feature
names with JSON special characters. So a name part is reduced to ASCII letters, digits and underscores
(accents folded: ``Zürich`` → ``Zurich``; every other run of characters → one ``_``); text with nothing
left gets a short digest of itself (``x`` + 8 hex digits), so different values stay apart. Text that is
already such a name is kept as it is. Names that still collide get ``_2``, ``_3``, … in order of
appearance (:func:`unique_names`). The original text stays in the feature dictionary.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def safe_part(text: object) -> str:
    """``text`` as a name part of ASCII letters, digits and single underscores (never empty)."""
    s = str(text)
    if s and not _UNSAFE.search(s):
        return s
    folded = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")
    part = _UNSAFE.sub("_", folded).strip("_")
    if part:
        return part
    return "x" + hashlib.sha256(s.encode("utf-8")).hexdigest()[:8]


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` with later duplicates renamed ``<name>_2``, ``<name>_3``, … (never clashing with any name)."""
    names = list(names)
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            k = 2
            while f"{name}_{k}" in taken:
                k += 1
            name = f"{name}_{k}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out
