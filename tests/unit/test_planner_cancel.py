import random

from lanscatter.planner import Planner


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
