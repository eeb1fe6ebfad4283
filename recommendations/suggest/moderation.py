"""Which queries may be suggested to other shoppers, and why not.

A suggestion is shown to everyone, so anyone's searches must not be enough to make one:
a query from the search log needs ``MIN_SEARCHES`` searches by ``MIN_SHOPPERS`` distinct
visitors or devices (each visit's repeats count once), and no query, logged or from the
catalogue, is suggested when it holds a URL or domain, an e-mail address, a phone number
or a long run of digits, characters beyond words and simple punctuation (markup, say),
more than ``MAX_WORDS`` words, a word of ``DENYLIST``, or was blocked in the admin. As the
hosted services do (Algolia's minimum hits and excluded terms, Google Retail's unique-user
threshold, denylist and personal-data filter).
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Any

from ..conf import app_settings
from .text import normalize

URL = re.compile(r"(?i)(?:[a-z][a-z0-9+.-]*://|www\.|\b[a-z0-9-]+\.(?:[a-z]{2,24})\b(?:/|\b))")
EMAIL = re.compile(r"[^\s@]+@[^\s@]+")
PHONE = re.compile(r"(?:\+?\d[\s().-]?){7,}")
LONG_DIGITS = re.compile(r"\d{6,}")
#: Letters, digits, spaces and the punctuation product names use.
PLAIN = re.compile(r"^[\w\s\-'&.,/+%()]*$")


def content_problem(text: str) -> str | None:
    """Why ``text`` may never be suggested, or None."""
    if EMAIL.search(text):
        return "holds an e-mail address"
    if URL.search(text):
        return "holds a URL or domain"
    if PHONE.search(text) or LONG_DIGITS.search(text):
        return "holds a phone number or a long number"
    if not PLAIN.match(text):
        return "holds characters beyond words and simple punctuation"
    if len(text.split()) > int(app_settings.SUGGEST["MAX_WORDS"]):
        return f"has more than {app_settings.SUGGEST['MAX_WORDS']} words"
    denied = denylist()
    if denied and any(word in denied for word in normalize(text).split()):
        return "holds a word of the denylist"
    return None


def denylist() -> frozenset[str]:
    return frozenset(
        normalize(str(word)) for word in app_settings.SUGGEST["DENYLIST"] if normalize(str(word))
    )


def why_not_suggested(row: Any, blocked: Container[str] = frozenset()) -> str | None:
    """Why a ``SearchQuery`` row is not suggested (None: it is); the admin shows this.

    ``blocked``: the keys blocked in the admin (a set: this runs once per row of the index).
    """
    if row.key in blocked:
        return "blocked in the admin"
    if row.found_nothing:
        return "its latest search found nothing"
    if row.source == "log":
        settings = app_settings.SUGGEST
        if row.searches < int(settings["MIN_SEARCHES"]):
            return f"{row.searches} of the {settings['MIN_SEARCHES']} searches needed"
        if row.shoppers < int(settings["MIN_SHOPPERS"]):
            return f"{row.shoppers} of the {settings['MIN_SHOPPERS']} distinct shoppers needed"
    return content_problem(row.text)
