"""Writes tests/tui/feeds/rehearsal.jsonl: a status feed of a small two-site distribution.

STAND-IN: until the engine can run a local rehearsal, this script simulates one (seeded, so the
output is the same on every run) and records what the masters' and relay's `/status/ws` would
have sent. Replace the file with a recording of a real `lanscatter up --local` rehearsal, made
with `python -m lanscatter_tui.record` against the same sites, and drop this script.

Feed file format (one JSON object a line, in time order):
    {"t": seconds since the start, "site": "hq", "message": <a /status/ws message>}

The simulated distribution: site hq (origin master + 5 peers + the relay gw-b as a peer of hq),
site branch (gw-b as its master side + 4 peers) behind a 50 Mbit/s WAN link; 96 chunks of 4 MiB.
A slow source is noticed, peer br-2 goes down and comes back, and the relay restarts once.

Run: python tests/tui/make_feed.py [OUT]
"""

from __future__ import annotations

import base64
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanscatter.status_feed import FeedEncoder

CHUNKS = 96
CHUNK_BYTES = 4 << 20
TICK_S = 0.25
DURATION_S = 24.0
WAN_BYTES_PER_S = 6_250_000.0
START = 1_764_072_000.0  # a fixed wall-clock start keeps the recording reproducible


@dataclass
class Node:
    name: str
    site: str
    role: str
    have: set[int] = field(default_factory=set)
    inflight: dict[int, int] = field(default_factory=dict)  # chunk -> ticks left
    online: bool = True
    rx: int = 0
    tx: int = 0
    rx_rate: float = 0.0
    tx_rate: float = 0.0
    uploads: int = 0
    upload_times: list[float] = field(default_factory=list)


def _bitmap(indexes: object) -> str:
    value = 0
    for i in indexes:  # type: ignore[attr-defined]
        value |= 1 << i
    return base64.b64encode(value.to_bytes((CHUNKS + 7) // 8, "little")).decode()


def _node_json(node: Node, role: str) -> dict[str, Any]:
    avg = sum(node.upload_times) / len(node.upload_times) if node.upload_times else None
    return {
        "name": node.name,
        "site": node.site,
        "role": role,
        "online": node.online,
        "have": len(node.have),
        "bitmap": _bitmap(node.have),
        "inflight": _bitmap(node.inflight),
        "downloads": len(node.inflight),
        "uploads": node.uploads,
        "dl_slots": 2,
        "ul_slots": 2,
        "rx_bytes": node.rx,
        "tx_bytes": node.tx,
        "rx_rate": round(node.rx_rate, 1),
        "tx_rate": round(node.tx_rate, 1),
        "avg_upload_s": round(avg, 3) if avg is not None else None,
    }


class Rehearsal:
    def __init__(self) -> None:
        self.rng = random.Random(7)
        self.origin = Node("origin", "hq", "master", have=set(range(CHUNKS)))
        self.relay = Node("gw-b", "branch", "relay")
        self.hq = [self.origin] + [Node(f"hq-{i}", "hq", "peer") for i in range(1, 6)] + [self.relay]
        self.branch = [self.relay] + [Node(f"br-{i}", "branch", "peer") for i in range(1, 5)]
        self.wan_bytes = 0
        self.wan_rate = 0.0
        self.events: dict[str, list[dict[str, Any]]] = {"hq": [], "branch": []}
        self.slow = "hq-3"
        self.t = 0.0

    def event(self, site: str, level: str, message: str) -> None:
        self.events[site] = (self.events[site] + [{"t": START + self.t, "level": level, "message": message}])[
            -50:
        ]

    def step(self) -> None:
        self.t += TICK_S
        for swarm in (self.hq, self.branch[1:]):
            for node in swarm:
                node.rx_rate *= 0.7
                node.tx_rate *= 0.7
                node.uploads = 0
        # The relay's downloads are the only traffic on the WAN link; each takes 3 ticks.
        wan_moved = len(self.relay.inflight) * CHUNK_BYTES // 3
        for node in self.hq[1:] + self.branch[1:]:
            self._advance(node)
        for node in self.hq[1:] + self.branch[1:]:
            if node.online:
                self._start_downloads(node)
        self.wan_bytes += wan_moved
        self.wan_rate = 0.7 * self.wan_rate + 0.3 * (wan_moved / TICK_S)
        self._script()

    def _advance(self, node: Node) -> None:
        for chunk in list(node.inflight):
            node.inflight[chunk] -= 1
            node.rx_rate += 0.3 * CHUNK_BYTES / TICK_S / 3
            if node.inflight[chunk] <= 0:
                del node.inflight[chunk]
                if node.online:
                    node.have.add(chunk)
                    node.rx += CHUNK_BYTES

    def _start_downloads(self, node: Node) -> None:
        swarm = self.branch if node.site == "branch" and node is not self.relay else self.hq
        sources = [n for n in swarm if n is not node and n.online]
        wanted = [c for c in range(CHUNKS) if c not in node.have and c not in node.inflight]
        self.rng.shuffle(wanted)
        wanted.sort(key=lambda c: sum(c in s.have for s in sources))  # rarest first
        slots = 1 if node is self.relay else 2
        for chunk in wanted:
            if len(node.inflight) >= slots:
                break
            holders = [s for s in sources if chunk in s.have and s.uploads < 2]
            if not holders:
                continue
            source = self.rng.choice(holders)
            ticks = (
                3 if node is self.relay else self.rng.randint(1, 3) + (4 if source.name == self.slow else 0)
            )
            node.inflight[chunk] = ticks
            source.uploads += 1
            source.tx += CHUNK_BYTES
            source.tx_rate += 0.3 * CHUNK_BYTES / (ticks * TICK_S)
            source.upload_times = (source.upload_times + [ticks * TICK_S])[-20:]

    def _script(self) -> None:
        t = round(self.t, 2)
        if t == 4.0:
            self.event("hq", "warning", f"slow source {self.slow}: 1.75 s per chunk, avoided for 30 s")
        if t == 8.0:
            self.branch[2].online = False
            self.branch[2].inflight.clear()
            self.event("branch", "warning", "peer br-2 lost (connection reset)")
        if t == 13.0:
            self.branch[2].online = True
            self.event("branch", "info", "peer br-2 joined again; resuming with 0 chunks lost")
        if t == 16.0:
            self.event("branch", "error", "relay gw-b exited (signal 9); restarting")
            self.event("branch", "info", f"relay gw-b restarted; {len(self.relay.have)} verified chunks kept")

    def status(self, site: str) -> dict[str, Any]:
        if site == "hq":
            nodes = [_node_json(n, n.role) for n in self.hq]
            name, role = "origin", "master"
        else:
            nodes = [_node_json(n, n.role) for n in self.branch]
            name, role = "gw-b", "relay"
        everyone = [n for n in (self.hq if site == "hq" else self.branch) if n.role != "master"]
        link = {
            "name": "wan:hq>branch",
            "bytes": self.wan_bytes,
            "bytes_per_s": WAN_BYTES_PER_S,
            "rate": round(self.wan_rate, 1),
        }
        return {
            "version": 1,
            "role": role,
            "name": name,
            "site": site,
            "generation": "g-20251125-1",
            "chunks": CHUNKS,
            "bytes": CHUNKS * CHUNK_BYTES,
            "synced": all(len(n.have) == CHUNKS for n in everyone),
            "time": round(START + self.t, 3),
            "nodes": nodes,
            "links": [link],
            "events": list(self.events[site]),
        }


def record(out: Path) -> int:
    sim = Rehearsal()
    encoders = {"hq": FeedEncoder(), "branch": FeedEncoder()}
    lines = []
    while sim.t < DURATION_S:
        for site, encoder in encoders.items():
            message = encoder.message(sim.status(site))
            if message is not None:
                lines.append(
                    json.dumps(
                        {"t": round(sim.t, 2), "site": site, "message": message}, separators=(",", ":")
                    )
                )
        sim.step()
    out.write_text("\n".join(lines) + "\n")
    return len(lines)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("feeds") / "rehearsal.jsonl"
    print(f"{record(target)} messages -> {target}")
