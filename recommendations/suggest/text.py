"""Query text: one normal form, so "Café  Chairs!" and "cafe chairs" count as one query."""

from __future__ import annotations

import re
import unicodedata

#: Longest query text accepted from a shopper; longer input is refused (API) or cut (pages).
MAX_QUERY_LENGTH = 100
_NON_WORD = re.compile(r"[^\w]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalize(text: str) -> str:
    """Lower case, accents removed, punctuation as spaces, single spaces, trimmed."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_NON_WORD.sub(" ", stripped.casefold()).replace("_", " ").split())


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text or ""))
