"""The emulator builds real namespaces whose links keep their rate, delay and loss, and cleans up.

Needs root, iproute2 and /dev/net/tun; skipped with the reason elsewhere. All traffic stays
between namespaces these tests create (10.213.0.0/16 inside them).
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from lanscatter.emulator import probe
from lanscatter.emulator.netns import Emulation, EmulatorError, cleanup, list_namespaces, support_problem
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink
from tests.integration.emulated_tree import new_tag

_problem = support_problem()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_problem is not None, reason=_problem or "")]

MBIT = 1e6 / 8
WAN_RATE = 20 * MBIT
LAN_RATE = 100 * MBIT
DELAY_S = 0.04
TCP_PAYLOAD_SHARE = 1448 / 1500     # what TCP (with timestamps) carries of each IP packet


def two_sites(tag: str, loss: float = 0.0) -> NetSpec:
    return NetSpec(
        sites=(
            Site("hq", LAN_RATE, (Host("o"), Host("a"))),
            Site("br", LAN_RATE, (Host("b"), Host("c")), parent="hq"),
        ),
        wan_links=(WanLink("hq", "br", WAN_RATE, WAN_RATE, DELAY_S, loss),),
        tag=tag,
    )


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulation]:
    with Emulation(two_sites(new_tag())) as built:
        yield built
    assert list_namespaces(built.layout.prefix) == []


def _echo_servers(emu: Emulation, hosts: list[str], seconds: float) -> dict[str, int]:
    procs = {h: probe.start(emu, h, "udp-echo", "--bind", emu.address(h), "--seconds", str(seconds))
             for h in hosts}
    return {h: probe.wait_ready(p) for h, p in procs.items()}


def test_every_host_reaches_every_other(emu: Emulation) -> None:
    hosts = list(emu.layout.hosts)
    ports = _echo_servers(emu, hosts, seconds=15)
    pings = {
        (a, b): probe.start(emu, a, "udp-ping", "--to", f"{emu.address(b)}:{ports[b]}", "--count", "3")
        for a in hosts for b in hosts if a != b
    }
    results = {pair: probe.finish(p, timeout=15) for pair, p in pings.items()}
    assert all(r["received"] == 3 for r in results.values()), results
    # fastest of each pair's replies: the scheduling noise of a dozen starting processes left out
    for (a, b), r in results.items():
        same_site = emu.layout.hosts[a].site == emu.layout.hosts[b].site
        fastest = min(r["rtt_ms"])
        # same site: well under the WAN's round trip, even on a loaded machine
        assert fastest < 1000 * DELAY_S if same_site else fastest >= 2000 * DELAY_S - 1, (a, b, r["rtt_ms"])


def test_round_trip_over_the_wan_is_twice_the_delay(emu: Emulation) -> None:
    port = _echo_servers(emu, ["a"], seconds=10)["a"]
    ping = probe.start(emu, "c", "udp-ping", "--to", f"{emu.address('a')}:{port}",
                       "--count", "50", "--interval", "0.01")
    result = probe.finish(ping, timeout=10)
    assert result["received"] == 50
    median = statistics.median(result["rtt_ms"])
    assert abs(median - 2000 * DELAY_S) <= 15, result["rtt_ms"]
    assert min(result["rtt_ms"]) >= 2000 * DELAY_S - 1


def test_links_keep_their_rates_and_the_counters_count_the_bytes(emu: Emulation) -> None:
    seconds = 3.0
    flows = {"down": ("o", "b"), "up": ("c", "a"), "lan": ("a", "o")}
    sinks = {k: probe.start(emu, dst, "tcp-sink", "--bind", emu.address(dst), "--seconds", str(seconds + 5))
             for k, (_src, dst) in flows.items()}
    ports = {k: probe.wait_ready(p) for k, p in sinks.items()}
    before = emu.wan_counters()["hq<->br"]
    senders = [probe.start(emu, src, "tcp-send", "--to", f"{emu.address(dst)}:{ports[k]}",
                           "--seconds", str(seconds)) for k, (src, dst) in flows.items()]
    for s in senders:
        probe.finish(s, timeout=seconds + 10)
    got = {k: probe.finish(p, timeout=10) for k, p in sinks.items()}
    after = emu.wan_counters()["hq<->br"]

    for name, cap in (("down", WAN_RATE), ("up", WAN_RATE), ("lan", LAN_RATE)):
        rate = probe.throughput_bytes_per_s(got[name]["series"], skip_s=1.0)
        assert 0.8 * cap <= rate / TCP_PAYLOAD_SHARE <= 1.2 * cap, (name, rate * 8 / 1e6)
    # tx is parent -> child: the down flow's data plus the up flow's acks; rx the reverse
    for counted, payload, delivered in (
        (after.tx_bytes - before.tx_bytes, after.tx_tcp_payload - before.tx_tcp_payload, got["down"]["bytes"]),
        (after.rx_bytes - before.rx_bytes, after.rx_tcp_payload - before.rx_tcp_payload, got["up"]["bytes"]),
    ):
        assert delivered <= counted <= 1.12 * delivered
        assert 0.995 * delivered <= payload <= 1.025 * delivered   # retransmits count too


def test_ports_carry_their_rate_at_once_and_a_switch_is_shared() -> None:
    """Two flows between four hosts of one site: each keeps its port's rate on a plain switched
    LAN; with a `switch` rate they share it."""
    seconds = 3.0
    flows = {"first": ("o", "a"), "second": ("b", "c")}
    hosts = tuple(Host(h) for h in "oabc")
    for switch in (None, 60 * MBIT):
        spec = NetSpec(sites=(Site("hq", LAN_RATE, hosts, switch_bytes_per_s=switch),), tag=new_tag())
        with Emulation(spec) as built:
            sinks = {k: probe.start(built, dst, "tcp-sink", "--bind", built.address(dst),
                                    "--seconds", str(seconds + 5)) for k, (_src, dst) in flows.items()}
            ports = {k: probe.wait_ready(p) for k, p in sinks.items()}
            senders = [probe.start(built, src, "tcp-send", "--to", f"{built.address(dst)}:{ports[k]}",
                                   "--seconds", str(seconds)) for k, (src, dst) in flows.items()]
            for sender in senders:
                probe.finish(sender, timeout=seconds + 10)
            got = {k: probe.finish(p, timeout=10) for k, p in sinks.items()}
        rates = [probe.throughput_bytes_per_s(r["series"], skip_s=1.0) / TCP_PAYLOAD_SHARE for r in got.values()]
        if switch is None:
            assert all(0.8 * LAN_RATE <= r <= 1.2 * LAN_RATE for r in rates), [r * 8 / 1e6 for r in rates]
        else:
            assert 0.8 * switch <= sum(rates) <= 1.2 * switch, [r * 8 / 1e6 for r in rates]


def test_loss_drops_about_the_share_and_teardown_leaves_nothing() -> None:
    loss = 0.1
    with Emulation(two_sites(new_tag(), loss=loss)) as lossy:
        port = _echo_servers(lossy, ["o"], seconds=10)["o"]
        ping = probe.start(lossy, "b", "udp-ping", "--to", f"{lossy.address('o')}:{port}",
                           "--count", "1000", "--interval", "0.002")
        result = probe.finish(ping, timeout=10)
        forwarders = list(lossy.forwarder_pids().values())
    delivered = result["received"] / result["sent"]
    assert abs(delivered - (1 - loss) ** 2) <= 0.06, delivered
    assert list_namespaces(lossy.layout.prefix) == []
    assert not any(_running(pid) for pid in forwarders)
    if lossy.delay_mechanism == "forwarder":
        lost = lossy.forwarder_stats["hq<->br"]["outbound"]["lost_packets"]
        assert lost > 0


# Builds the two-site tree (tag argv[1]) in its own process, says so, and waits to be signalled.
# SIGINT as at a terminal: a shell that runs the tests as a background job leaves it ignored, and
# every child inherits that.
_HOLDER = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from lanscatter.emulator.netns import Emulation
from lanscatter.emulator.spec import Host, NetSpec, Site, WanLink
from tests.integration.emulated_tree import new_tag
spec = NetSpec(
    sites=(Site("hq", 1e7, (Host("o"), Host("a"))), Site("br", 1e7, (Host("b"), Host("c")), parent="hq")),
    wan_links=(WanLink("hq", "br", 1e6, 1e6, 0.01),),
    tag=sys.argv[1],
)
with Emulation(spec) as emu:
    print("built", *emu.forwarder_pids().values(), flush=True)
    time.sleep(60)
"""


def _start_holder(tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _HOLDER, tag], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit status may wait for a reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cleanup_removes_what_a_killed_builder_left() -> None:
    tag = new_tag()
    prefix = f"lsc{tag}-"
    builder = _start_holder(tag)
    try:
        assert builder.stdout is not None
        words = builder.stdout.readline().split()   # bounded: the builder times out its own steps
        assert words and words[0] == "built"
        builder.send_signal(signal.SIGKILL)
        builder.wait(timeout=5)
        forwarders = [int(p) for p in words[1:]]
        deadline = time.monotonic() + 3        # orphaned forwarders notice within their idle wait
        while any(_running(p) for p in forwarders) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(p) for p in forwarders)
        assert len(list_namespaces(prefix)) == 6
        done = subprocess.run([sys.executable, "-m", "lanscatter.emulator", "--cleanup", prefix],
                              capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout.count("removed ") == 6
        assert list_namespaces(prefix) == []
    finally:
        if builder.poll() is None:
            builder.kill()
            builder.wait(timeout=5)
        cleanup(prefix)


def test_a_link_without_delay_or_loss_is_a_shaped_veth_counting_wire_packets() -> None:
    spec = NetSpec(
        sites=(Site("hq", LAN_RATE, (Host("o"),)), Site("br", LAN_RATE, (Host("b"),), parent="hq")),
        wan_links=(WanLink("hq", "br", WAN_RATE, WAN_RATE),),
        tag=new_tag(),
    )
    with Emulation(spec) as plain:
        assert plain.delay_mechanism is None and plain.forwarder_pids() == {}
        sink = probe.start(plain, "b", "tcp-sink", "--bind", plain.address("b"), "--seconds", "8")
        port = probe.wait_ready(sink)
        before = plain.wan_counters()["hq<->br"]
        probe.finish(probe.start(plain, "o", "tcp-send", "--to", f"{plain.address('b')}:{port}",
                                 "--seconds", "2.5"), timeout=10)
        got = probe.finish(sink, timeout=10)
        after = plain.wan_counters()["hq<->br"]
    rate = probe.throughput_bytes_per_s(got["series"], skip_s=0.5)
    assert 0.8 * WAN_RATE <= rate / TCP_PAYLOAD_SHARE <= 1.2 * WAN_RATE
    assert after.link_header_bytes == 14
    payload = after.tx_tcp_payload - before.tx_tcp_payload
    assert 0.995 * got["bytes"] <= payload <= 1.025 * got["bytes"]


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_a_signal_tears_the_emulation_down(signum: int, exit_code: int) -> None:
    tag = new_tag()
    prefix = f"lsc{tag}-"
    holder = _start_holder(tag)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith("built")
        assert len(list_namespaces(prefix)) == 6
        holder.send_signal(signum)
        assert holder.wait(timeout=10) == exit_code   # SIGINT: Python re-raises it after unwinding
        assert list_namespaces(prefix) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=5)
        cleanup(prefix)


def test_a_failed_build_leaves_nothing_behind() -> None:
    spec = two_sites(new_tag())
    # where the kernel has no netem, insisting on it fails half-way through the build
    forced = Emulation(spec, delay_mechanism="netem")
    try:
        forced.build()
    except EmulatorError as exc:
        assert "netem" in str(exc)
    else:
        forced.teardown()
        pytest.skip("this kernel has netem; nothing fails")
    assert list_namespaces(forced.layout.prefix) == []
