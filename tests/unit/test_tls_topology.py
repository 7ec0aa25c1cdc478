"""TLS in the site tree: `tls:`, `tls_fingerprint:` and `tls_ca:` load and validate with positions,
and reach each role's command line (who serves, who requires, who pins whom)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from lanscatter.cli import run
from lanscatter.core.errors import ConfigError
from lanscatter.net.tls import client_context, fingerprint_file, new_identity, normalize_fingerprint
from lanscatter.topology import TopologyError, derive_plan, load_topology
from lanscatter.topology.roles import RunContext, role_command
from lanscatter.topology.tls_plan import identity_dir, plan_tls

FP = {name: f"{i:x}" * 64 for i, name in enumerate(("o", "p", "g", "b", "g2", "c"), start=1)}

TREE = f"""\
dataset:
  source: /srv/data
  origin: o
sites:
  hq:
    hosts:
      o: {{address: 10.0.0.1, tls_fingerprint: "{FP['o']}"}}
      p: {{address: 10.0.0.2, tls_fingerprint: "sha256:{':'.join(FP['p'][i:i + 2] for i in range(0, 64, 2))}"}}
  br:
    gateway: g
    tls: all
    hosts:
      g: {{address: 10.0.1.1, tls_fingerprint: "{FP['g']}"}}
      b: {{address: 10.0.1.2, tls_fingerprint: "{FP['b']}"}}
  far:
    gateway: g2
    tls: off
    hosts:
      g2: {{address: 10.0.2.1}}
      c: {{address: 10.0.2.2}}
wan:
  - between: [hq, br]
    bandwidth: 50Mbit
  - between: [hq, far]
    bandwidth: 50Mbit
"""


def _load(tmp_path: Path, text: str = TREE):  # type: ignore[no-untyped-def]
    path = tmp_path / "tree.yaml"
    path.write_text(text)
    return load_topology(path)


def _problems(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(TopologyError) as info:
        _load(tmp_path, text)
    return [(p.line, p.col, p.code) for p in info.value.problems]


def test_tls_values_load_with_site_overrides_and_normalized_fingerprints(tmp_path: Path) -> None:
    topo = _load(tmp_path)
    assert topo.tls == "wan" and topo.tls_of("hq") == "wan" and topo.tls_of("br") == "all"
    assert topo.tls_of("far") == "off"
    assert topo.host("p").tls_fingerprint == FP["p"]          # colons and sha256: prefix accepted
    assert topo.host("c").tls_fingerprint is None


def test_bad_tls_values_are_placed_exactly(tmp_path: Path) -> None:
    text = TREE.replace("    tls: all\n", "    tls: some\n").replace(f'"{FP["b"]}"', '"12ab"')
    text = "tls: everywhere\ntls_ca: missing.pem\n" + text
    assert _problems(tmp_path, text) == [(1, 6, "bad-value"), (2, 9, "no-file"),
                                         (13, 10, "bad-value"), (16, 47, "bad-fingerprint")]


def test_two_hosts_with_one_fingerprint_are_a_problem(tmp_path: Path) -> None:
    text = TREE.replace(FP["b"], FP["g"])
    assert _problems(tmp_path, text) == [(14, 47, "duplicate-fingerprint")]


def _argv(tmp_path: Path, topo, host: str, tls) -> list[str]:  # type: ignore[no-untyped-def]
    plan = derive_plan(topo)
    ctx = RunContext(tmp_path / "tree.yaml", tmp_path / "state", local=False, workdir=None, tls=tls)
    return list(role_command(plan, plan.host(host), ctx).argv)


def _values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_roles_get_the_tls_options_their_links_need(tmp_path: Path) -> None:
    topo = _load(tmp_path)
    plan = derive_plan(topo)
    tls = plan_tls(topo, plan, [h.name for h in plan.hosts], tmp_path / "state", one_machine=False)
    argv = {h: _argv(tmp_path, topo, h, tls) for h in ("o", "p", "g", "b", "g2", "c")}
    # hq serves TLS (br's relay connects over it) but takes plain HTTP from its own LAN.
    for h in ("o", "p"):
        assert _values(argv[h], "--tls-cert") == [str(identity_dir(tmp_path / "state", h) / "cert.pem")]
        assert "--tls-required" not in argv[h] and "--tls-fingerprint" not in argv[h]
    # br's relay pins every hq host (each may be its chunk source) and requires TLS of its LAN.
    assert _values(argv["g"], "--tls-fingerprint") == sorted([FP["o"], FP["p"]])
    assert "--tls-required" in argv["g"] and "--tls-cert" in argv["g"]
    # br's peer: TLS on its LAN, pinning the site's hosts.
    assert _values(argv["b"], "--tls-fingerprint") == sorted([FP["g"], FP["b"]])
    assert "--tls-required" in argv["b"]
    # far is off: no option at all.
    for h in ("g2", "c"):
        assert not any(a.startswith("--tls") for a in argv[h])


def test_a_missing_fingerprint_is_an_error_naming_the_hosts_unless_a_ca_is_named(tmp_path: Path) -> None:
    topo = _load(tmp_path, TREE.replace(f', tls_fingerprint: "{FP["o"]}"', ""))
    plan = derive_plan(topo)
    with pytest.raises(ConfigError) as info:
        plan_tls(topo, plan, ["g"], tmp_path / "state", one_machine=False)
    assert "no tls_fingerprint for o" in info.value.message and "tls new" in (info.value.hint or "")
    (tmp_path / "ca.pem").write_text("")
    topo = _load(tmp_path, "tls_ca: ca.pem\n" + TREE.replace(f', tls_fingerprint: "{FP["o"]}"', ""))
    tls = plan_tls(topo, derive_plan(topo), ["g"], tmp_path / "state", one_machine=False)
    assert tls["g"].ca == tmp_path / "ca.pem" and tls["g"].pins == (FP["p"],)


def test_a_rehearsal_makes_the_identities_it_pins(tmp_path: Path) -> None:
    topo = _load(tmp_path, TREE.replace(f', tls_fingerprint: "{FP["o"]}"', ""))
    plan = derive_plan(topo, local=True, workdir=tmp_path / "w")
    state = tmp_path / "w" / "state"
    tls = plan_tls(topo, plan, [h.name for h in plan.hosts], state, one_machine=True)
    made = {h: fingerprint_file(identity_dir(state, h) / "cert.pem") for h in ("o", "p", "g", "b")}
    assert not identity_dir(state, "c").exists()
    assert tls["g"].pins == tuple(sorted([made["o"], made["p"]]))
    again = plan_tls(topo, plan, [h.name for h in plan.hosts], state, one_machine=True)
    assert again == tls                                      # made once, kept


def test_tls_new_makes_a_working_identity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tls", "new", "--dir", str(tmp_path / "id"), "--name", "gw-b"]) == 0
    fp = capsys.readouterr().out.split("fingerprint: ")[1].split()[0]
    assert normalize_fingerprint(fp) == fp == fingerprint_file(tmp_path / "id" / "cert.pem")
    assert (tmp_path / "id" / "key.pem").stat().st_mode & 0o077 == 0
    assert run(["tls", "fingerprint", str(tmp_path / "id" / "cert.pem")]) == 0
    assert capsys.readouterr().out.strip() == fp
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "id" / "cert.pem", tmp_path / "id" / "key.pem")
    assert client_context([fp]).check_hostname is False
    assert run(["tls", "new", "--dir", str(tmp_path / "id")]) != 0
    assert "already holds a TLS identity" in capsys.readouterr().err
    assert new_identity(tmp_path / "id", "x", overwrite=True) != fp


def test_fingerprints_are_read_as_openssl_prints_them_and_nothing_else() -> None:
    fp = "AB" * 32
    assert normalize_fingerprint(":".join(["AB"] * 32)) == fp.lower()
    assert normalize_fingerprint("sha256:" + fp) == fp.lower()
    for bad in ("", "ab" * 31, "zz" * 32, "ab" * 33):
        with pytest.raises(ValueError):
            normalize_fingerprint(bad)
