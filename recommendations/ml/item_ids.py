"""A model's item ids, both ways (index -> id, id -> index), in a few bytes per item.

A catalogue of a million products as a Python list and a dict is about 150 MB in every web
process: a string object per id, a list slot, a dict entry and an int object per index. Here
the ids are one numpy string array (16 bytes per short id), and the way back is a sorted
array of the ids' hashes with the index of each (16 bytes per item): a lookup is one binary
search and one comparison of strings. 45 MB resident for a million items.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from ..extras import require

np = require("ml", "numpy")


class ItemIds(Sequence[str]):
    """index -> shop item id; ``index_of`` is the other way. Index 0 is padding ("")."""

    #: Python's string hash is salted per process: fine, the table lives in this process only.
    key = staticmethod(hash)

    def __init__(self, ids: Iterable[str]) -> None:
        ids = [str(item) for item in ids]
        self._ids = np.array(ids, dtype=np.dtypes.StringDType())
        hashes = np.fromiter(map(self.key, ids), np.int64, len(ids))
        self._order = np.argsort(hashes, kind="stable").astype(np.int64)
        self._hashes = hashes[self._order]
        self.index_of = IndexOf(self)

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return [str(item) for item in self._ids[index]]
        return str(self._ids[index])

    def __iter__(self) -> Iterator[str]:
        return (str(item) for item in self._ids)

    def find(self, item: str) -> int:
        """The index of ``item`` (never 0, the padding), or -1 when the model does not know it."""
        key = self.key(item)
        at = int(np.searchsorted(self._hashes, key))
        while at < len(self._hashes) and self._hashes[at] == key:  # equal hashes: compare ids
            index = int(self._order[at])
            if index and self._ids[index] == item:
                return index
            at += 1
        return -1

    def indices(self, items: Sequence[str]) -> np.ndarray:
        """``find`` of each of ``items`` at once (int64; -1, or 0 for "", when unknown): a
        request's history in one binary search and one comparison, not a Python round each."""
        if not items:
            return np.zeros(0, np.int64)
        keys = np.fromiter(map(self.key, items), np.int64, len(items))
        at = np.searchsorted(self._hashes, keys)
        np.minimum(at, len(self._hashes) - 1, out=at)
        found = self._order[at]
        hit = self._ids[found] == np.array(items, dtype=np.dtypes.StringDType())
        result = np.where(hit, found, -1)
        for position in np.flatnonzero(~hit):  # unknown, or a hash shared with another id
            if self._hashes[at[position]] == keys[position]:
                result[position] = self.find(items[position])
        return result


class IndexOf:
    """shop item id -> index, read like the dict it replaces (``get``, ``in``, ``[]``)."""

    def __init__(self, ids: ItemIds) -> None:
        self._ids = ids

    def get(self, item: str, default: int | None = None) -> int | None:
        index = self._ids.find(item) if isinstance(item, str) else -1
        return default if index < 0 else index

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and self._ids.find(item) >= 0

    def __getitem__(self, item: str) -> int:
        index = self.get(item)
        if index is None:
            raise KeyError(item)
        return index

    def __len__(self) -> int:
        return len(self._ids) - 1  # the padding is no item
