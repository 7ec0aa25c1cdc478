"""Builds an emulated site tree out of network namespaces on this Linux machine (needs root).

`Emulation(spec)` makes a namespace per host and per site router, a bridge per site in its
router's namespace, a veth cable per host, and a link per WAN hop between two routers, all
addressed and routed as `lanscatter.emulator.layout` says, and shaped with tc as
`lanscatter.emulator.shaping` says. Nothing is created in the machine's own namespace: every
veth is created with both ends already inside ours, and no address outside 10.213.0.0/16 is
routable from inside, so traffic cannot leave the emulated tree.

WAN delay and loss: netem where the kernel has it (checked with a real `tc qdisc add ... netem`),
otherwise a pair of tun devices joined by `lanscatter.emulator.forwarder`. `delay_mechanism` says
which one ran. Links without delay or loss are plain shaped veths.

Cleanup: `teardown()` (also run by the context manager, including on Ctrl-C and SIGTERM) stops the
processes this object started, by PID, and deletes its namespaces. After a crash, `cleanup(prefix)`
finds the leftovers by their name prefix, stops what still runs inside them and deletes them.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Literal

from lanscatter.core.errors import LanscatterError
from lanscatter.deploy.process_stop import stop, stop_pids
from lanscatter.emulator import shaping
from lanscatter.emulator.layout import Layout, WanHop, plan
from lanscatter.emulator.spec import NetSpec

log = logging.getLogger("lanscatter.emulator")

DelayMechanism = Literal["auto", "netem", "forwarder"]
_COMMAND_TIMEOUT_S = 15.0
_READY_TIMEOUT_S = 10.0
_STOP_GRACE_S = 3.0
_NETNS_DIR = "/run/netns"
_TCP_IP_HEADER_BYTES = 20 + 20 + 12     # IPv4, TCP, the timestamp option Linux sends by default
_ETHERNET_HEADER_BYTES = 14


class EmulatorError(LanscatterError):
    """The emulated network could not be built, inspected or removed."""


@dataclass(frozen=True, slots=True)
class LinkCounters:
    """Interface counters of a WAN link, read at its parent router's end.

    tx = parent -> child (what the parent sent into the link), rx = child -> parent (what arrived).
    Bytes are whole packets as the interface sees them: IP packets on the forwarder's tun devices,
    Ethernet frames (`link_header_bytes` = 14 more each) on veths. Packets are wire packets: WAN
    veths get no GSO super-packets (gso_max_segs 1), and tun devices never do.
    """

    tx_bytes: int
    rx_bytes: int
    tx_packets: int
    rx_packets: int
    link_header_bytes: int

    def _payload(self, nbytes: int, packets: int) -> int:
        return nbytes - packets * (_TCP_IP_HEADER_BYTES + self.link_header_bytes)

    @property
    def tx_tcp_payload(self) -> int:
        """TCP payload bytes parent -> child, if all traffic is IPv4 TCP with timestamps."""
        return self._payload(self.tx_bytes, self.tx_packets)

    @property
    def rx_tcp_payload(self) -> int:
        """TCP payload bytes child -> parent, if all traffic is IPv4 TCP with timestamps."""
        return self._payload(self.rx_bytes, self.rx_packets)


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise EmulatorError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.returncode}")
    return done


def _tc(namespace: str, commands: list[list[str]]) -> None:
    for command in commands:
        _run(["tc", "-n", namespace, *command])


def support_problem() -> str | None:
    """Why namespaces cannot be emulated here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command (iproute2) is missing"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no tun devices)"
    return None


def list_namespaces(prefix: str) -> list[str]:
    """Names of the existing namespaces that start with `prefix`."""
    out = _run(["ip", "netns", "list"]).stdout
    names = (line.split()[0] for line in out.splitlines() if line.strip())
    return sorted(n for n in names if n.startswith(prefix))


def _namespace_pids(namespace: str) -> list[int]:
    out = _run(["ip", "netns", "pids", namespace], check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit() and int(tok) != os.getpid()]


def cleanup(prefix: str = "lsc") -> list[str]:
    """Remove every namespace whose name starts with `prefix`, and what still runs inside it.

    For the leftovers of a crashed run. Returns the names removed. The processes stopped are only
    those inside these namespaces, which only an emulation puts there.
    """
    if not prefix.startswith("lsc"):
        raise EmulatorError(f"refusing to clean up namespaces named {prefix!r}*", "prefixes start with 'lsc'")
    removed = []
    for namespace in list_namespaces(prefix):
        pids = _namespace_pids(namespace)
        if pids:
            log.info("stopping %d process(es) left in %s", len(pids), namespace)
            stop_pids(pids, _STOP_GRACE_S)
        _run(["ip", "netns", "del", namespace], check=False)
        removed.append(namespace)
    return removed


class Emulation:
    """A built site tree. Use as a context manager: built on enter, removed on exit."""

    def __init__(self, spec: NetSpec, *, delay_mechanism: DelayMechanism = "auto") -> None:
        self.spec = spec
        self.layout: Layout = plan(spec)
        self.requested_mechanism = delay_mechanism
        # What emulates WAN delay/loss: "netem", "forwarder", or None when no link needs it.
        self.delay_mechanism: str | None = None
        self.forwarder_stats: dict[str, dict[str, Any]] = {}
        self._processes: list[tuple[subprocess.Popen[Any], bool]] = []   # (process, own group)
        self._forwarders: dict[str, subprocess.Popen[str]] = {}
        self._tun_links: set[str] = set()
        self._built = False
        self._previous_sigterm: Any = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Emulation:  # noqa: PYI034 (typing.Self is 3.11+, we support 3.10)
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.build()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.teardown()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None

    def _on_sigterm(self, signum: int, _frame: FrameType | None) -> None:
        # Unwind like Ctrl-C does, so __exit__ tears down from a consistent point.
        raise SystemExit(128 + signum)

    def build(self) -> None:
        leftovers = list_namespaces(self.layout.prefix)
        if leftovers:
            raise EmulatorError(
                f"namespaces {self.layout.prefix}* already exist ({len(leftovers)})",
                f"remove a crashed run's leftovers: python -m lanscatter.emulator --cleanup "
                f"{self.layout.prefix}",
            )
        started = time.monotonic()
        self._built = True
        try:
            self._build_namespaces()
            self._build_lans()
            self._choose_mechanism()
            for hop in self.layout.wan.values():
                self._build_wan(hop)
            self._build_switches()
            self._build_routes()
        except BaseException:
            self.teardown()
            raise
        log.info(
            "built %d namespaces in %.2fs (WAN delay/loss: %s)",
            len(self.layout.namespaces), time.monotonic() - started, self.delay_mechanism or "none needed",
        )

    def teardown(self) -> None:
        """Stop what this emulation started and delete its namespaces. Safe to call again."""
        if not self._built:
            return
        _stop_children(self._processes)
        self._processes.clear()
        for name, proc in self._forwarders.items():
            self.forwarder_stats[name] = _stop_forwarder(proc)
        self._forwarders.clear()
        cleanup(self.layout.prefix)
        self._built = False

    # -- using it --------------------------------------------------------------------------------

    def namespace(self, host: str) -> str:
        return self.layout.hosts[host].namespace

    def address(self, host: str) -> str:
        return self.layout.hosts[host].address

    def exec(self, host: str, argv: Sequence[str], **popen_kw: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside `host`'s namespace; teardown stops it (and its process group)."""
        popen_kw.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(host), *argv], **popen_kw
        )
        self._processes.append((proc, bool(popen_kw["start_new_session"])))
        return proc

    def wan_counters(self) -> dict[str, LinkCounters]:
        """Byte and packet counters of every WAN link (see LinkCounters), by WanLink.name."""
        out = {}
        for name, hop in self.layout.wan.items():
            raw = _run(["ip", "-n", hop.parent_namespace, "-s", "-j", "link", "show", "dev",
                        hop.parent_interface]).stdout
            stats = json.loads(raw)[0]["stats64"]
            out[name] = LinkCounters(
                tx_bytes=stats["tx"]["bytes"], rx_bytes=stats["rx"]["bytes"],
                tx_packets=stats["tx"]["packets"], rx_packets=stats["rx"]["packets"],
                link_header_bytes=0 if name in self._tun_links else _ETHERNET_HEADER_BYTES,
            )
        return out

    def forwarder_pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._forwarders.items()}

    # -- building --------------------------------------------------------------------------------

    def _build_namespaces(self) -> None:
        routers = {r.namespace for r in self.layout.routers.values()}
        ipv6 = os.path.isdir("/proc/sys/net/ipv6")
        for namespace in self.layout.namespaces:
            _run(["ip", "netns", "add", namespace])
            _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            settings = []
            if ipv6:   # no router solicitations or MLD reports on our links and counters
                settings += ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
            if namespace in routers:
                settings.append("net.ipv4.ip_forward=1")
            if settings:
                _run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", *settings])

    def _build_lans(self) -> None:
        for router in self.layout.routers.values():
            r = router.namespace
            _run(["ip", "-n", r, "link", "add", router.bridge, "type", "bridge"])
            _run(["ip", "-n", r, "addr", "add", f"{router.lan_address}/{router.prefix_len}",
                  "dev", router.bridge])
            _run(["ip", "-n", r, "link", "set", router.bridge, "up"])
        for host in self.layout.hosts.values():
            r = self.layout.routers[host.site].namespace
            h = host.namespace
            _run(["ip", "link", "add", "name", host.interface, "netns", h, "type", "veth",
                  "peer", "name", host.router_port, "netns", r])
            _run(["ip", "-n", r, "link", "set", host.router_port, "master",
                  self.layout.routers[host.site].bridge, "up"])
            _run(["ip", "-n", h, "addr", "add", f"{host.address}/{host.prefix_len}", "dev", host.interface])
            _run(["ip", "-n", h, "link", "set", host.interface, "up"])
            _tc(h, shaping.shape_rate(host.interface, host.up_bytes_per_s))
            _tc(r, shaping.shape_rate(host.router_port, host.down_bytes_per_s))

    def _choose_mechanism(self) -> None:
        if not any(hop.link.needs_delay_or_loss for hop in self.layout.wan.values()):
            return
        if self.requested_mechanism != "auto":
            self.delay_mechanism = self.requested_mechanism
            return
        probe_ns = next(iter(self.layout.routers.values())).namespace
        try:
            _tc(probe_ns, shaping.netem_probe("lo"))
        except EmulatorError as exc:
            log.info("no netem here (%s); WAN delay and loss by the userspace forwarder", exc)
            self.delay_mechanism = "forwarder"
        else:
            self.delay_mechanism = "netem"

    def _build_wan(self, hop: WanHop) -> None:
        link = hop.link
        p, c = hop.parent_namespace, hop.child_namespace
        use_forwarder = link.needs_delay_or_loss and self.delay_mechanism == "forwarder"
        if use_forwarder:
            _run(["ip", "-n", p, "tuntap", "add", "dev", hop.parent_interface, "mode", "tun"])
            _run(["ip", "-n", c, "tuntap", "add", "dev", hop.child_interface, "mode", "tun"])
            self._tun_links.add(link.name)
        else:
            _run(["ip", "link", "add", "name", hop.parent_interface, "netns", p, "type", "veth",
                  "peer", "name", hop.child_interface, "netns", c])
            # segment before the interface counts, so its counters count wire packets
            _run(["ip", "-n", p, "link", "set", "dev", hop.parent_interface, "gso_max_segs", "1"])
            _run(["ip", "-n", c, "link", "set", "dev", hop.child_interface, "gso_max_segs", "1"])
        for ns, dev, addr, rate in (
            (p, hop.parent_interface, hop.parent_address, link.down_bytes_per_s),
            (c, hop.child_interface, hop.child_address, link.up_bytes_per_s),
        ):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/{hop.prefix_len}", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
            if link.needs_delay_or_loss and self.delay_mechanism == "netem":
                _tc(ns, shaping.shape_netem(dev, rate, link.delay_s, link.loss))
            else:
                _tc(ns, shaping.shape_rate(dev, rate, link.delay_s))
        if use_forwarder:
            self._start_forwarder(hop)

    def _start_forwarder(self, hop: WanHop) -> None:
        link = hop.link
        fastest = max(link.down_bytes_per_s, link.up_bytes_per_s)
        limit = max(1000, 2 * shaping.queue_bytes(fastest, link.delay_s) // 1500)
        argv = [
            "ip", "netns", "exec", hop.child_namespace,
            sys.executable, "-m", "lanscatter.emulator.forwarder",
            "--local", hop.child_interface, "--remote", hop.parent_interface,
            "--remote-netns", f"{_NETNS_DIR}/{hop.parent_namespace}",
            "--delay", repr(link.delay_s), "--loss", repr(link.loss),
            "--limit", str(limit), "--seed", str(len(self._forwarders)),
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._forwarders[link.name] = proc
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(_READY_TIMEOUT_S) and proc.stdout.readline().strip() == "ready"
        if not ready:
            raise EmulatorError(
                f"the WAN forwarder of {link.name} did not start",
                (proc.stderr.read() if proc.poll() is not None and proc.stderr else None),
            )

    def _build_switches(self) -> None:
        """A site's shared switch: after the WAN ends exist, as their ingress feeds it too."""
        for router in self.layout.routers.values():
            if router.switch is None or router.switch_bytes_per_s is None:
                continue
            r = router.namespace
            _run(["ip", "-n", r, "link", "add", router.switch, "type", "ifb"])
            _run(["ip", "-n", r, "link", "set", router.switch, "up"])
            _tc(r, shaping.shared_ingress(router.switch, router.switch_ports, router.switch_bytes_per_s))

    def _build_routes(self) -> None:
        for router in self.layout.routers.values():
            for route in router.routes:
                _run(["ip", "-n", router.namespace, "route", "add", route.destination, "via", route.via])
        for host in self.layout.hosts.values():
            for route in host.routes:
                _run(["ip", "-n", host.namespace, "route", "add", route.destination, "via", route.via])


def _stop_children(children: Sequence[tuple[subprocess.Popen[Any], bool]]) -> None:
    """Stop our children (each with its own process group, when it has one) and reap them."""
    groups = {proc.pid for proc, own_group in children if own_group}
    for proc in stop([proc for proc, _ in children], _STOP_GRACE_S, groups=groups):
        if proc.poll() is None:
            log.warning("process %d did not exit after SIGKILL", proc.pid)


def _stop_forwarder(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Stop a forwarder and return the counters it prints on its way out ({} if it had died)."""
    if stop([proc], _STOP_GRACE_S):
        return {}                                   # killed: it printed nothing
    out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        # it died before we stopped it: the link was down from then on
        log.warning("WAN forwarder %d exited with %s: %s", proc.pid, proc.returncode, err.strip()[-300:])
    return json.loads(lines[-1]) if lines else {}
