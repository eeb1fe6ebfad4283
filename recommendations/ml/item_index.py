"""An approximate index of the item table, for catalogues too large to score whole per request.

At a million items the exact path (one product over the whole table, then a top-k over a
million scores) costs about 20 ms a request. A version of a catalogue over
``APPROXIMATE_ABOVE`` items also saves an inverted-file index over 8-bit codes of each item's
[embedding, bias] (faiss IVF-SQ8: the design ``bench/catalogue.py`` picked against exact
numpy, faiss's flat scans, usearch and hnswlib). A request asks it for the ``CANDIDATES``
items whose dense score (user . item + bias) is highest, adds every item a sparse term
touches (the history, the priors' neighbours, the boosted categories' members), and scores
those exactly from the item table (``NumpyTower.candidate_scores``; the freshness term only
lowers a score, so new products need no place of their own).
The softmax's mass outside the candidates, which the probabilities and the repeat/explore
mixture need, is estimated from a fixed uniform sample of the catalogue: the candidates
hold the head exactly, and the sample's estimate of the rest is unbiased.

The index file is mapped, not read (``IO_FLAG_MMAP_IFC``): a machine's workers share it.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..extras import require

np = require("ml", "numpy")

#: The version's file that holds the index.
FILE = "items.faiss"
#: Items the index proposes per request (before the sparse terms' own): past the longest list
#: a request reads (``services``' window, 40 for a list of ten), and the lists' pools.
CANDIDATES = 256
#: Items per inverted list, about; a request reads ``1 / PROBED_SHARE`` of the lists.
ITEMS_PER_LIST = 250
MAX_LISTS = 4096
PROBED_SHARE = 64
#: Items of the uniform sample that estimates the softmax mass outside the candidates.
SAMPLE = 4096
#: Vectors the lists' centres are trained on (a sample of the catalogue).
TRAINING_VECTORS = 200_000


def n_lists(n_items: int) -> int:
    return int(min(MAX_LISTS, max(16, n_items // ITEMS_PER_LIST)))


def build(table: np.ndarray, bias: np.ndarray, path: Path, seed: int = 0) -> None:
    """Write the index of items 1..n (row 0 of ``table`` is padding) to ``path``."""
    faiss = require("large", "faiss")
    vectors = np.hstack([table[1:], bias[1:, None]]).astype(np.float32)
    lists = n_lists(len(vectors))
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, vectors.shape[1], lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(vectors), min(len(vectors), TRAINING_VECTORS), replace=False)
    index.train(vectors[np.sort(sample)])
    index.add_with_ids(vectors, np.arange(1, len(vectors) + 1, dtype=np.int64))
    faiss.write_index(index, str(path))


class ItemIndex:
    """The saved index, mapped; ``search`` gives the items with the highest dense scores."""

    def __init__(self, path: Path, n_items: int) -> None:
        faiss = require("large", "faiss")
        try:
            self.index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as exc:  # faiss's own errors: a file it cannot read
            raise ValueError(f"the item index cannot be read ({exc})") from exc
        if self.index.ntotal != n_items:
            raise ValueError(f"the item index holds {self.index.ntotal} items for {n_items}")
        self.index.nprobe = max(1, math.ceil(self.index.nlist / PROBED_SHARE))
        # The sample is drawn the same way in every process from the catalogue's size alone.
        rng = np.random.default_rng(n_items)
        self.sample = np.sort(rng.choice(np.arange(1, n_items + 1), min(SAMPLE, n_items), replace=False))

    def search(self, user: np.ndarray) -> np.ndarray:
        """Item indices (> 0, no order) of about the ``CANDIDATES`` best dense scores for ``user`` [D]."""
        query = np.append(user.astype(np.float32), np.float32(1.0))[None, :]
        _, found = self.index.search(query, CANDIDATES)
        found = found[0]
        return found[found > 0]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: for a few thousand ints, a third of the hash table's time."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.empty(len(values), bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]
