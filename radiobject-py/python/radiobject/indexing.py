"""``Index``: an ordered set of string keys with O(1) key -> position lookups, and ``align``.

Used for the volumes of a collection (``VolumeCollection.index``, named ``"obs_id"``) and the
subjects of a dataset (``RadiObject.index``, named ``"obs_subject_id"``). Set operations keep the
order of the left operand, so ``a & b`` lists the common keys in ``a``'s order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import pandas as pd

__all__ = ["Index", "align"]

_SetLike = Union["Index", frozenset, set]

#: Added to lookups that miss: a handle is a snapshot of the dataset as of when it was opened (a
#: consistent view while another process appends), so what was written since is not in it.
STALE_HINT = " (a dataset handle shows the dataset as of when it was opened; open it again to see later writes)"


@dataclass(frozen=True)
class Index:
    """Ordered, duplicate-free string keys with their positions.

    Build with :meth:`Index.build`; ``keys`` is the tuple of keys, ``key_to_idx`` maps each key to
    its position, ``name`` labels the index (``"obs_id"``, ``"obs_subject_id"``).
    """

    keys: tuple[str, ...]
    key_to_idx: dict[str, int] = field(compare=False, repr=False)
    name: str = ""

    @classmethod
    def build(cls, keys: Iterable[str], name: str = "") -> Index:
        """An index over ``keys`` (kept in order). Raises ``ValueError`` on duplicates."""
        keys = tuple(keys)
        lookup = {k: i for i, k in enumerate(keys)}
        if len(lookup) != len(keys):
            dups = [k for k, n in Counter(keys).items() if n > 1]
            raise ValueError(f"duplicate keys in index {name!r}: {dups[:5]}")
        return cls(keys, lookup, name)

    # -- lookups

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.key_to_idx

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def get_index(self, key: str) -> int:
        """Position of ``key``; ``KeyError`` if absent."""
        try:
            return self.key_to_idx[key]
        except (KeyError, TypeError):
            raise KeyError(f"{key!r} is not in index {self.name!r}{STALE_HINT}") from None

    def get_key(self, idx: int) -> str:
        """Key at position ``idx`` (no negative indexing); ``IndexError`` if out of range."""
        n = len(self.keys)
        if not 0 <= idx < n:
            raise IndexError(f"index position {idx} is out of range [0, {n})")
        return self.keys[idx]

    # -- set algebra (left operand's order)

    @staticmethod
    def _lookup(other: Any) -> Any:
        if isinstance(other, Index):
            return other.key_to_idx
        if isinstance(other, (set, frozenset, dict)):
            return other
        return frozenset(other)

    def intersection(self, other: _SetLike) -> Index:
        """Keys in both, in ``self``'s order."""
        look = self._lookup(other)
        return Index.build([k for k in self.keys if k in look], self.name)

    def union(self, other: Index | Iterable[str]) -> Index:
        """``self``'s keys, then ``other``'s keys that ``self`` lacks."""
        keys = list(self.keys)
        keys.extend(k for k in (other.keys if isinstance(other, Index) else other) if k not in self.key_to_idx)
        return Index.build(keys, self.name)

    def difference(self, other: _SetLike) -> Index:
        """Keys of ``self`` not in ``other``, in ``self``'s order."""
        look = self._lookup(other)
        return Index.build([k for k in self.keys if k not in look], self.name)

    def symmetric_difference(self, other: Index) -> Index:
        """Keys in exactly one of the two: ``self``'s first, then ``other``'s."""
        look = self._lookup(other)
        mine = [k for k in self.keys if k not in look]
        theirs = [k for k in (other.keys if isinstance(other, Index) else other) if k not in self.key_to_idx]
        return Index.build(mine + theirs, self.name)

    __and__ = intersection
    __or__ = union
    __sub__ = difference
    __xor__ = symmetric_difference

    # -- positional selection

    def take(self, positions: Sequence[int]) -> Index:
        """Keys at ``positions`` (in that order; no negative positions)."""
        n = len(self.keys)
        out = []
        for p in positions:
            p = int(p)
            if not 0 <= p < n:
                raise IndexError(f"index position {p} is out of range [0, {n})")
            out.append(self.keys[p])
        return Index.build(out, self.name)

    def mask(self, mask: Sequence[bool] | np.ndarray) -> Index:
        """Keys where ``mask`` is True (``mask`` must have one entry per key)."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(self.keys),):
            raise ValueError(f"boolean mask of length {m.size} for an index of {len(self.keys)} keys")
        return Index.build([k for k, keep in zip(self.keys, m) if keep], self.name)

    # -- comparison

    def is_aligned(self, other: Index) -> bool:
        """Same keys in the same order (names may differ)."""
        return self.keys == other.keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Index):
            return NotImplemented
        return self.keys == other.keys and self.name == other.name

    def __hash__(self) -> int:
        return hash((self.keys, self.name))

    def __le__(self, other: Index) -> bool:
        return all(k in other.key_to_idx for k in self.keys)

    def __ge__(self, other: Index) -> bool:
        return all(k in self.key_to_idx for k in other.keys)

    # -- conversions

    def to_set(self) -> frozenset[str]:
        return frozenset(self.keys)

    def to_list(self) -> list[str]:
        return list(self.keys)

    def __repr__(self) -> str:
        n = len(self.keys)
        return f"Index({self.name!r}, {n} keys)" if self.name else f"Index({n} keys)"


def _position(i: Any, n: int, what: str) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"positions must be integers, got {type(i).__name__}")
    j = int(i) + n if int(i) < 0 else int(i)
    if not 0 <= j < n:
        raise IndexError(f"position {int(i)} is out of range for {n} {what}")
    return j


def iloc_positions(key: Any, n: int, what: str) -> int | list[int]:
    """The positions an ``iloc`` key selects among ``n`` ``what`` (e.g. ``"volumes"``).

    An int (negative counts from the end) gives one position; a slice, a list/array of ints or a
    boolean mask of length ``n`` give a list. ``IndexError`` out of range or for a mask of another
    length, ``TypeError`` for any other key.
    """
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return _position(key, n, what)
    if isinstance(key, slice):
        return list(range(n)[key])
    if isinstance(key, (list, tuple, np.ndarray, pd.Series)):
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"boolean mask of length {arr.size} for {n} {what}")
            return [int(i) for i in np.flatnonzero(arr)]
        if arr.size == 0:
            return []
        if arr.dtype.kind in "iu":
            return [_position(i, n, what) for i in arr.tolist()]
    raise TypeError(f"iloc takes an int, a slice, a list of ints or a boolean mask; got {type(key).__name__}")


def align(*indexes: Index) -> Index:
    """Keys present in every index, in the first index's order (an empty index for no argument)."""
    if not indexes:
        return Index.build([])
    out = indexes[0]
    for other in indexes[1:]:
        out = out.intersection(other)
    return out
