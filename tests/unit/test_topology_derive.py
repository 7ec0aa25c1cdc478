"""Derivation: roles, upstreams, folders, addresses and the link map, from small trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanscatter.topology import TopologyError, derive_plan, load_topology, resolve_secret
from lanscatter.topology.derive import FAST_PORT_SLOTS
from lanscatter.topology.model import SecretRef
from lanscatter.topology.problems import Pos

MIXED = """\
dataset:
  source: data
  origin: o
defaults:
  slots: 2
sites:
  hq:
    lan: 10Gbit
    switch: 20Gbit
    hosts:
      o: 10.0.0.1
      h1: {address: 10.0.0.2, upload_limit: 10MB/s}
  vpn:
    gateway: vg
    defaults: {folder: /srv/copy, slots: 6}
    hosts:
      v1: 10.1.0.2
      vg: {address: 10.1.0.1, master_port: 7000, slots: 9}
  region:
    gateway: rg
    hosts: [rg, r1]
  branch:
    lan: 100Mbit
    gateway: bg
    hosts:
      bg: {address: 10.3.0.1, download_limit: 5MB/s}
      b1: {address: 10.3.0.2, folder: rel/copy, on_synced: "touch done"}
wan:
  - between: [region, branch]   # listed before its parent's link: order does not matter
    bandwidth: 20Mbit
    latency: 40ms
  - between: [hq, vpn]
    down: 50Mbit
    up: 10Mbit
  - between: [region, hq]       # written child first: "down" is still away from the origin
    bandwidth: 1Gbit
    up: 100Mbit
"""


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "tree" / "site-tree.yaml"
    path.parent.mkdir()
    path.write_text(MIXED)
    return path


# host -> (role, upstream, folder relative to the YAML folder or absolute, slots)
DEPLOYED = {
    "o": ("master", None, "data", 2),
    "h1": ("peer", ("10.0.0.1", 10564), "/var/lib/lanscatter/data", 2),
    "vg": ("relay", ("10.0.0.1", 10564), "/srv/copy", 9),
    "v1": ("peer", ("10.1.0.1", 7000), "/srv/copy", 6),
    "rg": ("relay", ("10.0.0.1", 10564), "/var/lib/lanscatter/data", 2),
    "r1": ("peer", ("rg", 10564), "/var/lib/lanscatter/data", 2),
    "bg": ("relay", ("rg", 10564), "/var/lib/lanscatter/data", 2),
    "b1": ("peer", ("10.3.0.1", 10564), "rel/copy", 2),
}


@pytest.mark.parametrize("name", list(DEPLOYED))
def test_roles_upstreams_folders(mixed: Path, name: str) -> None:
    plan = derive_plan(load_topology(mixed))
    role, upstream, folder, slots = DEPLOYED[name]
    h = plan.host(name)
    assert h.roles == frozenset({role})
    assert h.upstream == upstream
    assert h.folder == (mixed.parent / folder).resolve()
    assert h.slots == slots


def test_tree_order_and_sites(mixed: Path) -> None:
    plan = derive_plan(load_topology(mixed))
    assert [(s.name, s.parent, s.depth, s.master) for s in plan.sites] == [
        ("hq", None, 0, "o"), ("vpn", "hq", 1, "vg"), ("region", "hq", 1, "rg"), ("branch", "region", 2, "bg")]
    assert [h.name for h in plan.hosts] == ["o", "h1", "v1", "vg", "rg", "r1", "bg", "b1"]
    assert plan.site_masters() == {"hq": ("10.0.0.1", 10564), "vpn": ("10.1.0.1", 7000),
                                   "region": ("rg", 10564), "branch": ("10.3.0.1", 10564)}
    assert plan.host("b1").on_synced == "touch done"


# link name -> (bytes per second, latency in seconds)
LINKS = {
    "switch:hq": (2.5e9, 0.0),
    "wan:hq>vpn": (6.25e6, 0.0), "wan:vpn>hq": (1.25e6, 0.0),
    "wan:hq>region": (1.25e8, 0.0), "wan:region>hq": (1.25e7, 0.0),
    "wan:region>branch": (2.5e6, 0.04), "wan:branch>region": (2.5e6, 0.04),
    # every host's port: its site's lan (10Gbit, 1Gbit by default, 100Mbit), narrowed by its limits
    "up:o": (1.25e9, 0.0), "down:o": (1.25e9, 0.0), "up:h1": (1e7, 0.0), "down:h1": (1.25e9, 0.0),
    **{f"{d}:{h}": (1.25e8, 0.0) for h in ("v1", "vg", "rg", "r1") for d in ("up", "down")},
    "up:bg": (1.25e7, 0.0), "down:bg": (5e6, 0.0), "up:b1": (1.25e7, 0.0), "down:b1": (1.25e7, 0.0),
}


def test_link_map(mixed: Path) -> None:
    lm = derive_plan(load_topology(mixed)).link_map
    assert {n: (link.bytes_per_s, link.latency_s) for n, link in lm.links.items()} == pytest.approx(LINKS)
    assert lm.site_parent == {"hq": None, "vpn": "hq", "region": "hq", "branch": "region"}
    assert lm.node_site["b1"] == "branch"
    assert lm.path("h1", "b1") == ("up:h1", "switch:hq", "wan:hq>region", "wan:region>branch", "down:b1")
    assert lm.path("b1", "bg") == ("up:b1", "down:bg")


def test_local_rehearsal_addresses_and_folders(mixed: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    plan = derive_plan(load_topology(mixed), local=True, workdir=work)
    assert [h.address for h in plan.hosts] == [f"127.0.0.{i}" for i in range(2, 10)]
    assert plan.host("o").folder == mixed.parent / "data"
    assert plan.host("b1").folder == work / "branch" / "b1"
    assert plan.host("r1").upstream == (plan.host("rg").address, 10564)
    assert plan.host("v1").upstream == (plan.host("vg").address, 7000)
    assert plan.local and not work.exists()  # planning writes nothing


def test_local_default_workdir_is_beside_the_file(mixed: Path) -> None:
    plan = derive_plan(load_topology(mixed), local=True)
    assert plan.host("h1").folder == mixed.parent / ".lanscatter-rehearsal" / "hq" / "h1"


def test_local_addresses_stay_in_loopback_and_skip_network_and_broadcast(tmp_path: Path) -> None:
    names = ", ".join(f"h{i}" for i in range(300))
    path = tmp_path / "big.yaml"
    path.write_text(f"dataset: {{source: /d, origin: h0}}\nsites:\n  one:\n    hosts: [{names}]\n")
    addresses = [h.address for h in derive_plan(load_topology(path), local=True).hosts]
    assert len(set(addresses)) == 300
    assert addresses[0] == "127.0.0.2" and addresses[252] == "127.0.0.254" and addresses[253] == "127.0.1.2"
    assert all(a.startswith("127.") and a.rsplit(".", 1)[1] not in ("0", "1", "255") for a in addresses)


def test_derivation_is_pure(mixed: Path) -> None:
    topo = load_topology(mixed)
    assert derive_plan(topo) == derive_plan(topo)


def test_unknown_host_lookup_raises(mixed: Path) -> None:
    with pytest.raises(KeyError):
        derive_plan(load_topology(mixed)).host("nope")


def test_dataset_defaults(mixed: Path) -> None:
    ds = derive_plan(load_topology(mixed)).dataset
    assert (ds.name, ds.chunk_size, ds.secret.kind, ds.secret.ref) == ("data", 0, "env",
                                                                       "LANSCATTER_SECRET")


def _ref(kind: str, ref: str) -> SecretRef:
    return SecretRef(kind, ref, "tree.yaml", Pos(4, 11))


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_TEST_SECRET", "  s3cret-from-the-env\n")
    assert resolve_secret(_ref("env", "LS_TEST_SECRET"), Path("/")) == "s3cret-from-the-env"


def test_secret_from_missing_env_names_the_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LS_TEST_SECRET", raising=False)
    with pytest.raises(TopologyError) as info:
        resolve_secret(_ref("env", "LS_TEST_SECRET"), Path("/"))
    assert str(info.value).startswith("tree.yaml:4:11: error: ")
    assert "$LS_TEST_SECRET" in str(info.value) and "[secret-missing]" in str(info.value)


def test_secret_from_file_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("abc-defg-hijk-lmno\n")
    assert resolve_secret(_ref("file", "secret.txt"), tmp_path) == "abc-defg-hijk-lmno"
    (tmp_path / "empty.txt").write_text("\n")
    for name in ("missing.txt", "empty.txt"):
        with pytest.raises(TopologyError) as info:
            resolve_secret(_ref("file", name), tmp_path)
        assert info.value.problems[0].code == "secret-missing" and name in str(info.value)


def test_secret_inline_and_absent() -> None:
    assert resolve_secret(_ref("value", "x-long-enough-secret"), Path("/")) == "x-long-enough-secret"
    assert resolve_secret(None, Path("/")) is None


def test_a_weak_secret_names_the_position() -> None:
    with pytest.raises(TopologyError) as info:
        resolve_secret(_ref("value", "short"), Path("/"))
    assert str(info.value).startswith("tree.yaml:4:11: error: ") and "[weak-secret]" in str(info.value)


def test_a_deep_chain(tmp_path: Path) -> None:
    depth = 1100  # deeper than the interpreter would recurse
    sites = "".join(f"  s{i}:\n    gateway: h{i}\n    hosts: [h{i}]\n" for i in range(1, depth))
    wan = "".join(f"  - {{between: [s{i - 1}, s{i}], bandwidth: 1Gbit}}\n" for i in range(1, depth))
    path = tmp_path / "chain.yaml"
    path.write_text(f"dataset: {{source: /d, origin: h0}}\nsites:\n  s0:\n    hosts: [h0]\n{sites}wan:\n{wan}")
    plan = derive_plan(load_topology(path))
    assert plan.sites[-1].depth == depth - 1
    assert plan.host(f"h{depth - 1}").upstream == (f"h{depth - 2}", 10564)


PORTS = """\
dataset:
  source: data
  origin: o
sites:
  hq:
    hosts:
      o:
      h1:
      h2: {slots: 2}
      h3: {download_limit: 100Mbit}
  branch:
    lan: 100Mbit
    gateway: bg
    hosts: [bg, b1]
wan:
  - between: [hq, branch]
    bandwidth: 50Mbit
"""


def test_hosts_on_fast_ports_run_more_transfers_at_once_unless_the_tree_says(tmp_path: Path) -> None:
    # a plain `lan:` (1 Gbit/s by default) gives its hosts 4 transfers at once each way: 2 left a
    # quarter of such a port idle while each slot's next transfer was arranged
    f = tmp_path / "t.yaml"
    f.write_text(PORTS)
    plan = derive_plan(load_topology(f))
    assert {h.name: h.slots for h in plan.hosts} == {
        "o": FAST_PORT_SLOTS, "h1": FAST_PORT_SLOTS,
        "h2": 2,                 # written: kept
        "h3": None,              # its own limit makes its port a 100 Mbit/s one: the roles' default
        "bg": None, "b1": None,  # 100 Mbit/s ports
    }
