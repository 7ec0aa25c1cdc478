import random

from lanscatter.core.planner import Planner


def test_cancel_frees_slots_without_blaming_the_source() -> None:
    p = Planner(rng=random.Random(1))
    p.add_node("m", dl_slots=0, ul_slots=1, seed=True)
    p.set_chunks([("a" * 64, 10)])
    p.set_have("m", ["a" * 64])
    p.add_node("x", dl_slots=1, ul_slots=1)
    p.set_have("x", [])
    (t,) = p.plan(0.0)
    assert p.plan(0.1) == []                 # slots taken
    assert p.cancel(t.id) == t
    assert p.cancel(t.id) is None            # unknown ids are ignored
    assert p.node_stats("m").failures == 0
    (again,) = p.plan(0.2)
    assert (again.chunk, again.dest) == (t.chunk, "x")


def test_release_frees_the_slot_ahead_of_the_end_and_keeps_the_chunk_on_its_way() -> None:
    p = Planner(rng=random.Random(3))
    p.set_chunks([(f"c{i}", 100) for i in range(4)])
    p.add_node("S", dl_slots=0, ul_slots=4, seed=True)
    p.set_have("S", [f"c{i}" for i in range(4)])
    p.add_node("a", dl_slots=1, ul_slots=1)
    [t1] = p.plan(0.0)
    assert p.plan(0.0) == []                     # a's one slot is taken
    p.release(t1.id)
    p.release(t1.id)                             # a second notice changes nothing
    [t2] = p.plan(0.1)
    assert t2.dest == "a" and t2.chunk != t1.chunk           # the released chunk is still on its way
    assert p.node_stats("a").downloading == 1
    p.finish(t1.id, 0.2, ok=True)                # its outcome arrives later, without freeing twice
    assert p.node_stats("a").downloading == 1 and p.plan(0.2) == []
    p.finish(t2.id, 0.3, ok=True)
    assert p.node_stats("a").downloading == 0


def test_a_source_caught_serving_corrupt_data_is_one_again_once_it_announces_its_holdings_anew() -> None:
    chunks = [(f"c{i}", 100) for i in range(3)]
    p = Planner(rng=random.Random(2))
    p.set_chunks(chunks)
    p.add_node("S", dl_slots=0, ul_slots=0, seed=True)     # a seed that uploads nothing here
    p.set_have("S", [h for h, _ in chunks])
    p.add_node("A", dl_slots=1, ul_slots=1)
    p.set_have("A", [h for h, _ in chunks])
    p.add_node("B", dl_slots=1, ul_slots=1)
    [t] = p.plan(0.0)
    assert t.source == "A"
    p.finish(t.id, 0.1, ok=False, corrupt=True)
    assert p.node_stats("A").corrupt and p.plan(0.2) == []  # not a source any more
    p.set_have("A", [h for h, _ in chunks[1:]])              # it read its files again: one chunk lost
    assert not p.node_stats("A").corrupt
    [again] = p.plan(0.3)
    assert again.source == "A" and again.chunk != "c0"


def test_a_node_without_download_slots_gets_nothing_until_it_has_them_again() -> None:
    p = Planner(rng=random.Random(4))
    p.set_chunks([(f"c{i}", 100) for i in range(2)])
    p.add_node("S", dl_slots=0, ul_slots=2, seed=True)
    p.set_have("S", ["c0", "c1"])
    p.add_node("a", dl_slots=1, ul_slots=1)
    p.set_dl_slots("a", 0)                       # silent: nothing more is planned to it
    assert p.plan(0.0) == []
    p.set_dl_slots("a", 1)
    [t] = p.plan(0.1)
    assert t.dest == "a"
