"""Index and align: lookups, set algebra in the left operand's order, positional selection."""

from __future__ import annotations

import numpy as np
import pytest

from radiobject import Index, align


def test_build_lookups_and_repr():
    idx = Index.build(["b", "a", "c"], name="obs_id")
    assert idx.keys == ("b", "a", "c") and len(idx) == 3 and list(idx) == ["b", "a", "c"]
    assert idx.get_index("a") == 1 and idx.get_key(2) == "c"
    assert "a" in idx and "z" not in idx and 3 not in idx
    assert repr(idx) == "Index('obs_id', 3 keys)" and repr(Index.build([])) == "Index(0 keys)"
    with pytest.raises(KeyError):
        idx.get_index("z")
    with pytest.raises(IndexError):
        idx.get_key(3)
    with pytest.raises(IndexError):
        idx.get_key(-1)


def test_duplicates_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        Index.build(["a", "b", "a"])


def test_set_algebra_keeps_the_left_order():
    a = Index.build(["d", "b", "a", "c"], name="s")
    b = Index.build(["a", "x", "d"], name="t")
    assert (a & b).keys == ("d", "a") and (a & b).name == "s"
    assert (a | b).keys == ("d", "b", "a", "c", "x")
    assert (a - b).keys == ("b", "c")
    assert (a ^ b).keys == ("b", "c", "x")
    assert a.intersection(frozenset({"c", "d"})).keys == ("d", "c")
    assert a.difference({"d"}).keys == ("b", "a", "c")


def test_take_mask_and_comparisons():
    a = Index.build(["a", "b", "c"], name="n")
    assert a.take([2, 0]).keys == ("c", "a")
    with pytest.raises(IndexError):
        a.take([3])
    assert a.mask(np.array([True, False, True])).keys == ("a", "c")
    with pytest.raises(ValueError):
        a.mask([True])
    same = Index.build(["a", "b", "c"], name="n")
    assert a == same and hash(a) == hash(same)
    assert a != Index.build(["a", "b", "c"], name="other") and a.is_aligned(Index.build(["a", "b", "c"]))
    assert not a.is_aligned(Index.build(["b", "a", "c"]))
    assert Index.build(["a"]) <= a and a >= Index.build(["c", "a"]) and not (a <= Index.build(["a"]))
    assert a.to_set() == frozenset("abc") and a.to_list() == ["a", "b", "c"]


def test_align():
    a = Index.build(["s3", "s1", "s2"])
    b = Index.build(["s1", "s2", "s4"])
    c = Index.build(["s2", "s1"])
    assert align(a, b, c).keys == ("s1", "s2")
    assert align(a).keys == a.keys and len(align()) == 0
