"""The command-line options of standby gateways: `--alternate` (peers and relays: other masters of
the swarm they join) and `--gateways` (a relay that is one of its site's gateways), turned into
typed options for `roles/gateway.py` and `roles/peer_options.py`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from lanscatter.core.errors import ConfigError
from lanscatter.core.sizes import mbit_to_bytes

if TYPE_CHECKING:                  # a node's start loads only its own role
    from lanscatter.roles.gateway import GatewayOptions
    from lanscatter.roles.relay import RelayOptions


def hostport(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets); the port is required."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _gateway_list(text: str) -> tuple[tuple[str, int], ...]:
    items = tuple(hostport(t.strip()) for t in text.split(",") if t.strip())
    if len(items) < 2:
        raise argparse.ArgumentTypeError("name at least two gateways, this one among them")
    return items


def alternate_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--alternate", type=hostport, action="append", default=[], metavar="HOST:PORT",
                    help="another master of the same swarm (a standby gateway of that site); when the "
                         "master goes away or answers as a standby, the next is tried (repeatable)")


def gateway_args(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group("standby gateways", "one of several gateways of this site: exactly one "
                              "relays, the others are peers of the site and take over (docs/deploy.md)")
    g.add_argument("--gateways", type=_gateway_list, default=None, metavar="HOST:PORT,...",
                   help="the site's gateways (address and master port) in the tree's order, this one "
                        "(--listen, --port) among them")
    g.add_argument("--relay-dl-rate", type=mbit_to_bytes, default=None, metavar="MBIT",
                   help="download limit while relaying, in Mbit/s (default: --dl-rate)")


def gateway_options(args: argparse.Namespace, relay: RelayOptions) -> GatewayOptions | None:
    """The options of an elected gateway when --gateways is given, else None (a plain relay)."""
    if args.gateways is None:
        return None
    from lanscatter.roles.gateway import GatewayOptions

    me = (args.listen, relay.port)
    if me not in args.gateways:
        raise ConfigError(f"this gateway ({me[0]}:{me[1]}, from --listen and --port) is not among --gateways",
                          "--gateways lists every gateway of the site, this one included, as the "
                          "addresses and ports they listen on")
    up = relay.peer
    # A standby is a peer of its own site: it serves chunks there, over TLS when the site's LAN
    # requires it (with the same trust: the tree pins the site's hosts for its gateways too).
    lan_tls = relay.tls is not None and relay.tls.required
    standby = replace(up, role="peer", serve=True, ul_slots=up.dl_slots, alternates=(),
                      tls=up.tls if lan_tls else None, tls_server=relay.tls)
    if args.relay_dl_rate is not None:
        relay = replace(relay, peer=replace(up, dl_rate=args.relay_dl_rate))
    return GatewayOptions(relay=relay, standby=standby, gateways=args.gateways, rank=args.gateways.index(me),
                          upstreams=((up.master, up.master_port), *up.alternates))
