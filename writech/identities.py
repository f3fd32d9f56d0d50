"""The identities of the events a shard counted (SPEC §2), in about 16 bytes each.

An identity is the 64-bit dedup key of (student, event id). In a set of
Python ints each costs about 70 bytes (a 32-byte int object and the set's
slots), and a shard keeps every identity of its retained days: with the
7-day default and a school's week of events, they were the largest part of
a long-running process's state. Here they live in two places:

- the days' arrays (`array("Q")`, 8 bytes each), which snapshots hold and
  eviction drops by day; `Shard` owns those;
- a sorted NumPy array of every retained identity but the newest
  (8 bytes each), in which a whole batch's identities are looked up at once
  (`np.searchsorted`), and a set of the newest, those counted since the
  array was last rebuilt. The set joins the array once it reaches a
  sixteenth of it (and at least `MERGE_AT`): the two are sorted runs, which
  a stable sort (timsort) merges in linear time, so each identity is copied
  a bounded number of times on average.

A lookup costs one NumPy call per batch and, per event, two set lookups
(the newest, then the batch's hits in the array), which are small and so
stay in cache where one large set did not.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from sys import getsizeof
from typing import Final

import numpy as np
import numpy.typing as npt

MERGE_AT: Final = 1024  # the fewest newest identities worth a merge into the array

_Keys = npt.NDArray[np.uint64]
_NONE: Final[_Keys] = np.empty(0, np.uint64)


def _keys(ids: array[int]) -> _Keys:
    """A view of a day's identities; it must not outlive the call (the array cannot grow meanwhile)."""
    return np.frombuffer(ids, np.uint64)


class Identities:
    """Every identity counted on a shard's retained days."""

    __slots__ = ("_sorted", "newest")

    def __init__(self, days: Iterable[array[int]] = ()) -> None:
        parts = [_keys(ids) for ids in days]
        self._sorted: _Keys = np.sort(np.concatenate(parts)) if parts else _NONE
        # counted since `_sorted` was last rebuilt; `Shard.apply` adds to it directly
        self.newest: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self.newest)

    def __sizeof__(self) -> int:
        newest = self.newest
        return (
            object.__sizeof__(self)
            + getsizeof(self._sorted)
            + getsizeof(newest)
            + sum(map(getsizeof, newest))
        )

    def among_older(self, keys: list[int]) -> set[int]:
        """Those of `keys` counted before the newest (a key in neither is new)."""
        older = self._sorted
        if not keys or not len(older):
            return set()
        wanted = np.array(keys, np.uint64)
        found = older.searchsorted(wanted)
        found[found == len(older)] = 0  # past the end: compared with any key, not equal
        return set(wanted[older[found] == wanted].tolist())

    def merge(self) -> None:
        """Move the newest into the sorted array, once there are enough of them."""
        newest = self.newest
        if len(newest) < max(MERGE_AT, len(self._sorted) >> 4):
            return
        added = np.fromiter(newest, np.uint64, len(newest))
        added.sort()
        merged = np.concatenate((self._sorted, added))
        merged.sort(kind="stable")  # two sorted runs: timsort merges them in one pass
        self._sorted = merged
        newest.clear()

    def drop(self, ids: array[int]) -> None:
        """Forget an evicted day's identities."""
        self.newest.difference_update(ids)
        older = self._sorted
        if len(older):
            self._sorted = older[np.isin(older, _keys(ids), assume_unique=True, invert=True)]
