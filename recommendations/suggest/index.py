"""The prefix index: every suggestion, found by the start of any of its words.

Sorted arrays and ``bisect``, no trie: the terms (each suggestion's text from each word
start) are one sorted list, so a prefix is a contiguous range. Prefixes of up to
``SHORT_PREFIX`` characters (where ranges are long) have their best entries precomputed.
When a prefix matches nothing, prefixes one edit away (a letter left out, added, changed
or two swapped) are tried: one typo still finds "chair" from "chiar". The edit can only be
at or before the point where the prefix stops matching, and the letters tried there are
those the index really has after it, nearest positions first, within a fixed budget of
lookups (``MAX_TYPO_PROBES``): however many characters the index holds (anyone's searches
feed it), a query costs the same bounded work. Pure Python: it works without the ``ml``
extra, and 100k suggestions answer in well under a millisecond (BENCHMARKS.md).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from .text import normalize

SHORT_PREFIX = 3
#: Entries kept per short prefix, and read at most from a long range.
TOP_SIZE = 100
MAX_SCAN = 5000
#: A match at the start of the suggestion counts fully; inside it (a later word), this much.
INNER_WORD_WEIGHT = 0.5
_END = "\U0010ffff"
#: Sorted-array lookups one corrected query may spend, and variants it ranks at most.
MAX_TYPO_PROBES = 256
MAX_TYPO_MATCHES = 8


@dataclass(frozen=True)
class Entry:
    """One suggestion: its normal form, how it is shown, how good it is in general."""

    key: str
    text: str
    score: float
    categories: dict[str, float] = field(default_factory=dict)  # category id -> share of outcomes
    related: tuple[str, ...] = ()  # keys of queries searched next in the same visits
    source: str = "log"  # log (the search log) or catalogue (product and category names)


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float  # entry score x where it matched
    corrected: bool = False  # found through the one-typo fallback


class SuggestionIndex:
    def __init__(self, entries: Iterable[Entry]) -> None:
        by_key: dict[str, Entry] = {}
        for entry in entries:
            if entry.key and (entry.key not in by_key or by_key[entry.key].score < entry.score):
                by_key[entry.key] = entry
        self.entries = sorted(by_key.values(), key=lambda entry: entry.key)
        self.position = {entry.key: i for i, entry in enumerate(self.entries)}
        postings: list[tuple[str, int, float]] = []
        for i, entry in enumerate(self.entries):
            start = 0
            for word in entry.key.split(" "):
                weight = 1.0 if start == 0 else INNER_WORD_WEIGHT
                postings.append((entry.key[start:], i, entry.score * weight))
                start += len(word) + 1
        postings.sort()
        self.terms = [term for term, _, _ in postings]
        self.term_entry = [i for _, i, _ in postings]
        self.term_score = [score for _, _, score in postings]
        self.tops = self._short_prefix_tops(postings)

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def _short_prefix_tops(postings: list[tuple[str, int, float]]) -> dict[str, list[tuple[float, int]]]:
        best: dict[str, dict[int, float]] = {}
        for term, i, score in postings:
            for length in range(1, min(SHORT_PREFIX, len(term)) + 1):
                scores = best.setdefault(term[:length], {})
                if scores.get(i, -1.0) < score:
                    scores[i] = score
        return {
            prefix: heapq.nlargest(TOP_SIZE, ((score, i) for i, score in scores.items()))
            for prefix, scores in best.items()
        }

    def _range(self, prefix: str) -> tuple[int, int]:
        return bisect_left(self.terms, prefix), bisect_left(self.terms, prefix + _END)

    def _ranked(self, prefix: str, k: int) -> list[tuple[float, int]]:
        if len(prefix) <= SHORT_PREFIX:
            return self.tops.get(prefix, [])[:k]
        lo, hi = self._range(prefix)
        best: dict[int, float] = {}
        for position in range(lo, min(hi, lo + MAX_SCAN)):
            i, score = self.term_entry[position], self.term_score[position]
            if best.get(i, -1.0) < score:
                best[i] = score
        return heapq.nlargest(k, ((score, i) for i, score in best.items()))

    def _matches_something(self, prefix: str) -> bool:
        position = bisect_left(self.terms, prefix)
        return position < len(self.terms) and self.terms[position].startswith(prefix)

    def _longest_matching(self, prefix: str) -> int:
        """Length of the longest start of ``prefix`` that some term starts with."""
        low, high = 0, len(prefix)  # prefix[:low] matches (the empty start always does)
        while low < high:
            middle = (low + high + 1) // 2
            if self._matches_something(prefix[:middle]):
                low = middle
            else:
                high = middle - 1
        return low

    def _next_letters(self, stem: str, budget: list[int]) -> list[str]:
        """The characters the index has right after ``stem``, one lookup each (from ``budget``)."""
        letters, n = [], len(stem)
        if budget[0] <= 0:
            return letters
        budget[0] -= 1
        position = bisect_left(self.terms, stem)
        while position < len(self.terms) and budget[0] > 0 and self.terms[position].startswith(stem):
            budget[0] -= 1
            term = self.terms[position]
            if len(term) == n:  # the stem itself is a term
                position += 1
                continue
            letters.append(term[n])
            position = bisect_left(self.terms, stem + term[n] + _END)
        return letters

    def _one_edit(self, prefix: str) -> Iterable[str]:
        """Prefixes one edit away that the index has, nearest the break first, within budget.

        An edit after the break (where ``prefix`` stops matching) leaves the broken start in
        place, so only positions up to it can help.
        """
        budget = [MAX_TYPO_PROBES]
        broken_at = self._longest_matching(prefix)
        for i in range(min(broken_at, len(prefix) - 1), -1, -1):
            letters = self._next_letters(prefix[:i], budget)
            variants = [prefix[:i] + prefix[i + 1 :]]  # a letter too many
            if i + 1 < len(prefix):
                variants.append(prefix[:i] + prefix[i + 1] + prefix[i] + prefix[i + 2 :])  # two swapped
            variants += [prefix[:i] + c + prefix[i + 1 :] for c in letters if c != prefix[i]]  # wrong letter
            variants += [prefix[:i] + c + prefix[i:] for c in letters]  # a letter missing
            for variant in variants:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
                if variant and self._matches_something(variant):
                    yield variant

    def lookup(self, text: str, k: int = 10) -> list[Match]:
        """The ``k`` best suggestions starting with ``text`` (normalized), best first."""
        prefix = normalize(text)
        if not prefix:
            return []
        ranked = self._ranked(prefix, k)
        corrected = False
        if not ranked and len(prefix) >= 3:
            corrected = True
            found: dict[int, float] = {}
            variants = dict.fromkeys(self._one_edit(prefix))
            for variant in list(variants)[:MAX_TYPO_MATCHES]:
                for score, i in self._ranked(variant, k):
                    found[i] = max(found.get(i, -1.0), score)
            ranked = heapq.nlargest(k, ((score, i) for i, score in found.items()))
        return [Match(self.entries[i], score, corrected) for score, i in ranked]

    def get(self, text: str) -> Entry | None:
        position = self.position.get(normalize(text))
        return None if position is None else self.entries[position]
