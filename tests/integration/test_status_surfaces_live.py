"""One real run, sampled while chunks move: /status, /metrics and the monitor's rows tell the same
slots in use, and none of them ever shows more slots in use than a node has (issue: `4/3`, `3/3+`)."""

from __future__ import annotations

import json
import random
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lanscatter.core.status import read_status
from lanscatter_tui.view_model import node_detail, node_stats, site_view
from tests.integration.nodes import HOST, Cluster, synced, wait_for


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def _slot_gauges(text: str) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels["node"]): s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name in ("lanscatter_node_download_slots_used", "lanscatter_node_upload_slots_used")}


def _slots(status: dict[str, object]) -> list[tuple[object, ...]]:
    return [(n["name"], n["dl_slots_used"], n["ul_slots_used"]) for n in status["nodes"]]  # type: ignore[attr-defined,index]


def test_slots_in_use_agree_on_every_surface_and_never_exceed_the_slots(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "big.bin").write_bytes(random.Random(5).randbytes(3 << 20))
    cluster = Cluster(tmp_path, source)
    try:
        # Slow uploads (a 256 KiB chunk takes about a second) from an origin with 2 upload slots to
        # 3 peers of 2 slots each: the slots stay taken long enough to read every surface between
        # two changes.
        master = cluster.start_master("--slots", "2", "--ul-rate", "4")
        peers = [cluster.start_peer(f"p{i}", "--slots", "2", "--ul-rate", "4") for i in range(3)]
        url = f"http://{HOST}:{master.port}"
        samples, busy = 0, 0
        deadline = time.monotonic() + 60
        while not all(synced(p) for p in peers) and time.monotonic() < deadline:
            data = json.loads(_get(f"{url}/status"))
            gauges = _slot_gauges(_get(f"{url}/metrics").decode())
            if _slots(json.loads(_get(f"{url}/status"))) != _slots(data):
                continue                 # moved between the requests: /metrics may be either side
            doc = read_status(data)
            view = site_view("hq", doc, True)
            for raw, node, row in zip(data["nodes"], doc.nodes, view.nodes, strict=True):
                assert raw["dl_slots_used"] <= raw["dl_slots"] and raw["ul_slots_used"] <= raw["ul_slots"], raw
                assert gauges[("lanscatter_node_download_slots_used", node.name)] == raw["dl_slots_used"]
                assert gauges[("lanscatter_node_upload_slots_used", node.name)] == raw["ul_slots_used"]
                if node.online:
                    columns = node_stats(row, True).split()
                    assert columns[1:3] == [f"{raw['dl_slots_used']}/{raw['dl_slots']}",
                                            f"{raw['ul_slots_used']}/{raw['ul_slots']}"], (columns, raw)
                    assert f"ul {raw['ul_slots_used']}/{raw['ul_slots']}" in node_detail(row)
                busy += raw["dl_slots_used"] + raw["ul_slots_used"] > 0
            samples += 1
            time.sleep(0.1)
        wait_for(lambda: all(synced(p) for p in peers), 60, "the peers in sync", master, *peers)
        assert samples >= 5 and busy, (samples, busy)
    finally:
        cluster.close()
