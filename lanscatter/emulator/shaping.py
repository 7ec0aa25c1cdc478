"""tc command lines that shape one direction of an emulated link (egress of one interface). Pure.

Rate is an htb class (htb and tbf are all these kernels are sure to have; htb keeps its rate with
the GSO packets veths carry). Its queue is a byte fifo sized to one bandwidth-delay product plus
50 ms: a single TCP flow then fills the link without an unbounded queue adding seconds of delay,
which is what a real router's buffer roughly does. With netem, netem is the leaf instead and does
delay and loss; without it, delay and loss are the job of the
userspace forwarder (`lanscatter.emulator.forwarder`).

A site's shared switch is an ifb device: the ingress of each of its router's interfaces is
redirected (u32 match-all, mirred; these kernels have no matchall classifier) into the ifb, whose
egress is one htb class at the switch's rate, so every packet entering the site's router shares it.
"""

from __future__ import annotations

MTU_FRAME = 1514
_MIN_QUEUE_BYTES = 64 * MTU_FRAME


def queue_bytes(bytes_per_s: float, delay_s: float) -> int:
    """Byte limit of the queue in front of a link: one round trip of data plus 50 ms."""
    return max(_MIN_QUEUE_BYTES, int(bytes_per_s * (2 * delay_s + 0.05)))


def _rate(bytes_per_s: float) -> str:
    return f"{int(bytes_per_s * 8)}bit"


def htb_root(dev: str, bytes_per_s: float) -> list[list[str]]:
    """A root htb whose single default class caps everything leaving `dev` at `bytes_per_s`."""
    # One class, so quantum only matters for the kernel's warning; burst of ~2 ms at rate
    # (at least a few frames) keeps htb accurate at Gbit rates without long line-rate bursts.
    burst = max(4 * MTU_FRAME, int(bytes_per_s * 0.002))
    return [
        ["qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1"],
        ["class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
         "rate", _rate(bytes_per_s), "burst", str(burst), "cburst", str(burst),
         "quantum", str(MTU_FRAME)],
    ]


def shape_rate(dev: str, bytes_per_s: float, delay_s: float = 0.0) -> list[list[str]]:
    """Rate cap with a bounded byte fifo (the queue sized for a link of `delay_s` one way)."""
    return htb_root(dev, bytes_per_s) + [
        ["qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "bfifo",
         "limit", str(queue_bytes(bytes_per_s, delay_s))],
    ]


def shape_netem(dev: str, bytes_per_s: float, delay_s: float, loss: float) -> list[list[str]]:
    """Rate cap, then netem for the one-way delay and the loss share."""
    limit_packets = max(1000, queue_bytes(bytes_per_s, delay_s) // MTU_FRAME * 2)
    netem = ["qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "netem",
             "delay", f"{delay_s * 1000:.3f}ms", "limit", str(limit_packets)]
    if loss > 0:
        netem += ["loss", f"{loss * 100:.4f}%"]
    return htb_root(dev, bytes_per_s) + [netem]


def netem_probe(dev: str) -> list[list[str]]:
    """Add then remove a netem qdisc: succeeds only where the kernel has netem."""
    return [
        ["qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms"],
        ["qdisc", "del", "dev", dev, "root"],
    ]


def shared_ingress(ifb: str, ports: list[str] | tuple[str, ...], bytes_per_s: float) -> list[list[str]]:
    """Everything arriving on `ports` passes one rate cap on `ifb` (created and up beforehand)."""
    commands = shape_rate(ifb, bytes_per_s)
    for dev in ports:
        commands += [
            ["qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"],
            ["filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
             "action", "mirred", "egress", "redirect", "dev", ifb],
        ]
    return commands
