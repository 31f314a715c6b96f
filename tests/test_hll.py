"""HyperLogLog sketches (tracker.domain.hll): the bound the reports promise, exact unions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.domain import hll


@pytest.mark.parametrize("n", [0, 1, 7, 300, 4_000, 60_000])
def test_estimates_stay_within_the_documented_bound(n):
    for seed in range(3):
        sketch = hll.build(hll.hash64(f"{seed}-{i}") for i in range(n))
        assert abs(hll.estimate(sketch) - n) <= hll.error_bound(n, sigmas=4), (n, seed)


def test_union_is_the_sketch_of_the_union():
    a = [hll.hash64(i) for i in range(0, 5_000)]
    b = [hll.hash64(i) for i in range(3_000, 9_000)]
    assert hll.union(hll.build(a), hll.build(b)) == hll.build(a + b)
    assert hll.union_all([hll.build(a), hll.EMPTY, hll.build(b)]) == hll.build(a + b)
    assert hll.union(hll.EMPTY, hll.build(a)) == hll.build(a)


def test_storage_round_trip_and_size():
    small = hll.build(hll.hash64(i) for i in range(50))
    assert hll.decode(hll.encode(small)) == small
    assert len(hll.encode(small)) < 400, "a small set stores in a few bytes per value"
    assert hll.decode(None) == hll.EMPTY and hll.count(hll.EMPTY) == 0


def test_the_same_value_hashes_alike_and_repeats_count_once():
    assert hll.hash64("abc") == hll.hash64("abc") != hll.hash64("abd")
    assert hll.count(hll.build([hll.hash64("abc")] * 1000)) == 1


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=2 * hll.Builder.SMALL))
def test_a_sketch_built_one_hash_at_a_time_equals_the_sketch_of_the_set(hashes):
    builder = hll.Builder()
    for h in hashes:
        builder.add(h)
    assert builder.sketch() == hll.build(hashes)


def test_a_large_builder_keeps_registers_not_members():
    builder = hll.Builder()
    hashes = [hll.hash64(i) for i in range(20_000)]
    for h in hashes:
        builder.add(h)
    assert builder.sketch() == hll.build(hashes)
    assert builder._hashes is None  # bounded: 4,096 registers whatever the count
