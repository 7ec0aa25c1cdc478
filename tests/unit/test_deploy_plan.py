"""What `up --ssh` decides before it connects: which paths a copy would change, what secret it
passes on, where the tree file goes, and the options it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanscatter.cli import build_parser
from lanscatter.core.errors import ConfigError
from lanscatter.deploy.portable import relative_paths
from lanscatter.deploy.ssh_up import SshUpOptions, default_remote_file, secret_to_send
from lanscatter.topology.derive import derive_plan
from lanscatter.topology.validate import load_topology


def _tree(tmp_path: Path, source: str, secret: dict[str, str], folder: str | None = None,
          key_file: str | None = None) -> Path:
    hosts: dict[str, object] = {"origin": {"address": "10.0.0.1"},
                                "ws-1": {"address": "10.0.0.2", **({"folder": folder} if folder else {})}}
    doc: dict[str, object] = {"dataset": {"name": "builds", "source": source, "origin": "origin", "secret": secret},
                              "sites": {"hq": {"hosts": hosts}}}
    if key_file is not None:
        doc["origin_key_file"] = key_file
    path = tmp_path / "site-tree.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_relative_paths_are_named_as_written(tmp_path: Path) -> None:
    topo = load_topology(_tree(tmp_path, "src", {"file": "secret.txt"}, folder="mirror", key_file="origin.key"))
    assert relative_paths(topo) == ["dataset.source 'src'", "secret file 'secret.txt'",
                                    "origin_key_file 'origin.key'", "folder 'mirror' of host ws-1"]
    absolute = load_topology(_tree(tmp_path, "/srv/src", {"file": "/etc/lsc/secret"}, folder="/data/m"))
    assert relative_paths(absolute) == []


def test_an_env_secret_is_passed_on_and_a_file_secret_is_read_on_each_host(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDS_SECRET", "  s3cret-s3cret-s3cret \n")
    env_plan = derive_plan(load_topology(_tree(tmp_path, "/srv/src", {"env": "BUILDS_SECRET"})))
    assert secret_to_send(env_plan) == ("s3cret-s3cret-s3cret", "BUILDS_SECRET")
    file_plan = derive_plan(load_topology(_tree(tmp_path, "/srv/src", {"file": "/etc/lsc/secret"})))
    assert secret_to_send(file_plan) == (None, None)


def test_the_tree_file_goes_to_the_remote_users_cache_by_default(tmp_path: Path) -> None:
    path = _tree(tmp_path, "/srv/src", {"value": "x"})
    plan = derive_plan(load_topology(path))
    assert default_remote_file(plan, path) == ".cache/lanscatter/deploy/builds/site-tree.yaml"


@pytest.mark.parametrize("extra", [["--local"], ["--host", "ws-1"], ["--demo-data", "1MiB"], ["--store-and-forward"]])
def test_ssh_does_not_go_with_options_of_one_host_or_of_rehearsals(extra: list[str]) -> None:
    args = build_parser().parse_args(["up", "t.yaml", "--ssh", *extra])
    with pytest.raises(ConfigError, match="not --ssh|--ssh runs every host"):
        SshUpOptions.from_args(args, "builds")


def test_ssh_options_reach_the_ssh_command_line() -> None:
    args = build_parser().parse_args(["up", "t.yaml", "--ssh", "--ssh-config", "c", "--ssh-user", "deploy",
                                      "--ssh-option", "Port=2222", "--ssh-option", "Compression=yes",
                                      "--parallel", "8", "--no-copy", "--remote-file", "/etc/t.yaml"])
    opts = SshUpOptions.from_args(args, "builds")
    assert (opts.ssh.config, opts.ssh.user, opts.ssh.options) == ("c", "deploy", ("Port=2222", "Compression=yes"))
    assert (opts.parallel, opts.copy, opts.remote_file) == (8, False, "/etc/t.yaml")
    assert opts.workdir.parts[-3:] == ("lanscatter", "deploy", "builds")
