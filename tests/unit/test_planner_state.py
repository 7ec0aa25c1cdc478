"""The incremental indexes agree with counting from scratch, whatever the order of changes."""

from __future__ import annotations

import random
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from lanscatter.core.planner.state import RarityIndex, SiteCover, bits_from_indices, iter_bits, pick_bit

N = 100


def _mask(indices: list[int]) -> int:
    return bits_from_indices(indices, N)


changes = st.lists(st.tuples(st.lists(st.integers(0, N - 1), unique=True, max_size=N), st.booleans()),
                   max_size=12)


@settings(max_examples=150, deadline=None)
@given(changes, st.integers(0, 2**32))
def test_rarity_buckets_match_counts(ops: list[tuple[list[int], bool]], seed: int) -> None:
    rarity = RarityIndex(array("i", bytes(4 * N)))
    sites = SiteCover(array("i", bytes(4 * N)))
    naive = [0] * N
    rng = random.Random(seed)
    rarity.rarest(_mask([0]), rng)                 # builds the buckets: later changes are incremental
    sites.covered()
    for indices, remove in ops:
        # removals only of chunks that are there, like the planner
        indices = [i for i in indices if naive[i] > 0] if remove else indices
        delta = -1 if remove else 1
        for i in indices:
            naive[i] += delta
        if len(indices) % 2:
            rarity.add_many(_mask(indices), delta)  # bulk (above the threshold) and single steps
            sites.add_many(_mask(indices), delta)
        else:
            for i in indices:
                rarity.add(i, delta)
                sites.add(i, delta)
    assert list(rarity.counts) == naive
    for k in set(naive):
        assert set(iter_bits(rarity.bucket(k))) == {i for i in range(N) if naive[i] == k}
    assert rarity.keys == sorted(set(naive))
    for j, k in enumerate(rarity.keys):          # the unions the rarest search bisects over
        assert set(iter_bits(rarity.below[j])) == {i for i in range(N) if naive[i] <= k}
    assert set(iter_bits(sites.covered())) == {i for i in range(N) if naive[i]}
    held = [i for i in range(N) if naive[i]]
    if held:
        chunk, count = rarity.rarest(_mask(held), rng)
        assert naive[chunk] == count == min(naive[i] for i in held)


def test_pick_bit_reaches_every_set_bit() -> None:
    x = _mask([3, 40, 77])
    rng = random.Random(1)
    assert {pick_bit(x, rng, N) for _ in range(200)} == {3, 40, 77}
    assert pick_bit(_mask([9]), rng, N) == 9
