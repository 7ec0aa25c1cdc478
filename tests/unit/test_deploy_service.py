"""The systemd unit and files `lanscatter service` plans for a host."""

from __future__ import annotations

from pathlib import Path

import yaml

from lanscatter.deploy.service import ServiceOptions, describe, env_line, service_plan, unit_word
from lanscatter.topology.derive import DeploymentPlan, derive_plan
from lanscatter.topology.validate import load_topology


def _plan(tmp_path: Path, secret: dict[str, str]) -> DeploymentPlan:
    doc = {"dataset": {"name": "builds", "source": "/srv/builds", "origin": "origin", "secret": secret},
           "sites": {"hq": {"hosts": {"origin": {"address": "10.0.0.1"},
                                      "ws-1": {"address": "10.0.0.2", "folder": "/data/my builds"}}}}}
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(doc))
    return derive_plan(load_topology(path))


def _unit(service_files: tuple) -> list[str]:  # type: ignore[type-arg]
    return next(f.content for f in service_files if f.path.suffix == ".service").splitlines()


def test_a_peer_runs_up_for_its_host_as_the_service_user_writing_only_its_folders(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"env": "BUILDS_SECRET"})
    opts = ServiceOptions(("/opt/lanscatter/bin/lanscatter",), user="lsc", config_dir=Path("/etc/lsc"),
                          unit_dir=Path("/etc/systemd/system"), state_dir=Path("/var/lib/lsc-up"))
    service = service_plan(plan, plan.host("ws-1"), opts, "s3cret")
    assert service.unit_name == "lanscatter-builds.service"
    assert service.exec_start == ("/opt/lanscatter/bin/lanscatter", "up", "/etc/lsc/builds.yaml", "--host", "ws-1",
                                  "--headless", "--workdir", "/var/lib/lsc-up/builds")
    unit = _unit(service.files)
    assert "User=lsc" in unit and "Group=lsc" in unit
    assert "EnvironmentFile=/etc/lsc/builds.env" in unit
    assert 'ReadWritePaths="/data/my builds" /var/lib/lsc-up/builds' in unit
    assert "ProtectSystem=strict" in unit and "KillMode=mixed" in unit
    assert not any("s3cret" in line for line in unit)
    env = next(f for f in service.files if f.secret)
    assert env.path == Path("/etc/lsc/builds.env") and env.mode == 0o600
    assert env.content == 'BUILDS_SECRET="s3cret"\n'
    assert {(f.path, f.owner) for f in service.folders} >= {(Path("/data/my builds"), "lsc"),
                                                          (Path("/var/lib/lsc-up/builds"), "lsc")}
    shown = "\n".join(describe(service, user_exists=False))
    assert "s3cret" not in shown and "BUILDS_SECRET=<the swarm secret>" in shown
    assert "create system user and group lsc" in shown


def test_the_origin_writes_only_its_work_folder_and_a_file_secret_needs_no_environment_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"file": "/etc/lsc/secret"})
    service = service_plan(plan, plan.host("origin"), ServiceOptions(("lanscatter",)), None)
    unit = _unit(service.files)
    assert "ReadWritePaths=/var/lib/lanscatter-up/builds" in unit
    assert not any(line.startswith("EnvironmentFile") for line in unit)
    assert not any(f.secret for f in service.files)
    assert any("/etc/lsc/secret" in n for n in service.notes)
    assert any("/srv/builds" in n for n in service.notes)


def test_unit_words_and_environment_lines_escape_what_systemd_would_read_otherwise() -> None:
    assert unit_word("/usr/bin/lanscatter") == "/usr/bin/lanscatter"
    assert unit_word("/a b/c") == '"/a b/c"'
    assert unit_word("100%") == "100%%"
    assert unit_word("$HOME") == '"$$HOME"'
    assert env_line("S", 'a"b\\c') == 'S="a\\"b\\\\c"\n'
