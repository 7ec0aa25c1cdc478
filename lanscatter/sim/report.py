"""Text views of a simulation: the per-site chunk matrix and the closing summary.

Pure string building. Matrix legend: `#` held, `>` in flight, `:` partly held (a column covers
several chunks when they do not fit), `.` missing. After each row: downloads and uploads done, the
node's average upload time, and `slow` for a peer with a slow uplink.
"""

from __future__ import annotations

from lanscatter.sim.model import SimResult
from lanscatter.sim.simulator import Simulation

LEGEND = "# held  > in flight  : partly held  . missing"


def _cells(have: int, recv: int, n: int, width: int) -> str:
    if n == 0:
        return ""
    cols = min(width, n)
    out = []
    for c in range(cols):
        lo, hi = c * n // cols, (c + 1) * n // cols
        mask = ((1 << (hi - lo)) - 1) << lo
        held = (have & mask).bit_count()
        if held == hi - lo:
            out.append("#")
        elif recv & mask:
            out.append(">")
        elif held:
            out.append(":")
        else:
            out.append(".")
    return "".join(out)


def matrix(sim: Simulation, *, width: int = 64, max_rows: int = 40) -> str:
    """One block per site: a row per host (origin or relay first), as the planners see them."""
    n = len(sim.chunks)
    lines: list[str] = []
    for site in sim.sites:
        head = sim.head[site]
        hosts = sorted((h for h in sim.hosts.values() if h.site == site), key=lambda h: h.name != head)
        lines.append(f"site {site}: {sum(h.completed_at is not None for h in hosts)}/{len(hosts)} complete  "
                     f"({LEGEND})")
        for h in hosts[:max_rows]:
            swarms = sim.swarm_of[h.name]
            have = recv = downloads = uploads = 0
            upload_s = 0.0
            online = h.online
            for sw in swarms:
                if not online:
                    continue
                st = sw.planner.node_stats(h.name)
                if not st.seed or h.name == sim.origin:
                    recv = sw.planner.receiving(h.name).bits
                    have = sw.planner.has(h.name).bits & ~recv     # (it serves what it receives)
                downloads += st.downloads
                uploads += st.uploads
                upload_s += (st.avg_upload_s or 0.0) * st.uploads
            if not online:
                index = {c: i for i, (c, _) in enumerate(sim.chunks)}
                have = sum(1 << index[c] for c in h.held)
            avg = f"{upload_s / uploads:6.2f}s" if uploads else "     - "
            note = " slow" if h.slow else ""
            note += "" if online else " offline"
            lines.append(f"  {h.name:<12} {_cells(have, recv, n, width)}  dl {downloads:5d} ul {uploads:5d} "
                         f"up {avg}{note}")
        if len(hosts) > max_rows:
            lines.append(f"  ... {len(hosts) - max_rows} more")
    return "\n".join(lines)


def _t(x: float) -> str:
    return f"{x:9.2f}" if x != float("inf") else "      inf"


def summary(result: SimResult) -> str:
    verdict = "" if result.complete else "   (INCOMPLETE: gave up)"
    lines = [
        (f"makespan {result.makespan:.2f} s   ideal {result.ideal:.2f} s   "
         f"efficiency {result.efficiency:.3f}{verdict}"),
        (f"  ideal = the largest of: a copy over each host's narrowest path link, its receivers' copies "
         f"over a switch or over their site's upload ports (here {result.ideal_limit or 'nothing'})"),
        f"  {'site':<8}{'p50 s':>9}{'p99 s':>9}{'last s':>9}",
    ]
    for site, f in result.sites.items():
        lines.append(f"  {site:<8}{_t(f.p50)}{_t(f.p99)}{_t(f.last)}")
    if result.wan_bytes:
        lines.append(f"  {'WAN link':<16}{'bytes':>16}{'x dataset':>11}{'of which retries':>18}")
        for link, sent in result.wan_bytes.items():
            lines.append(f"  {link:<16}{int(sent):>16d}{result.wan_ratio(link):>11.3f}"
                         f"{int(result.wan_wasted[link]):>18d}")
    lines.append(f"  transfers {result.transfers}, failed {result.failures}, timed out {result.expired}")
    return "\n".join(lines)
