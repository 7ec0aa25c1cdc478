"""What the tests of `lanscatter emulate` share: the site tree they run (a hub and a branch behind
one WAN link, unless told otherwise), the command line, and the clean-up that leaves no namespace
behind whatever the test's outcome."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from lanscatter.emulator.layout import namespace_prefix
from lanscatter.emulator.netns import list_namespaces

HUB_AND_BRANCH = {
    "hub": {"lan": "100Mbit", "hosts": ["origin", "hub-1"]},
    "branch": {"lan": "100Mbit", "gateway": "gw", "hosts": ["gw", "branch-1"]},
}
WAN_20MBIT = {"between": ["hub", "branch"], "bandwidth": "20Mbit", "latency": "20ms"}


def write_tree(tmp_path: Path, source: Path, *, sites: dict[str, Any] | None = None,
               wan: dict[str, Any] = WAN_20MBIT, secret: str = "emulate-test-secret",
               defaults: dict[str, Any] | None = None) -> Path:
    """`tree.yaml` in tmp_path: the data set at `source` (origin host `origin`, 256 KiB chunks),
    `sites` (default HUB_AND_BRANCH) joined by `wan`."""
    doc: dict[str, Any] = {
        "dataset": {"source": str(source), "origin": "origin", "chunk_size": "256KiB", "secret": {"value": secret}},
    }
    if defaults is not None:
        doc["defaults"] = defaults
    doc["sites"] = sites if sites is not None else HUB_AND_BRANCH
    doc["wan"] = [wan]
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def new_tag(letter: str = "t") -> str:
    """A namespace tag of this run's own (namespaces are named `lsc<tag>-...`)."""
    return letter + secrets.token_hex(2)


def emulate_argv(tree: Path, work: Path, tag: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "lanscatter", "emulate", str(tree), "--workdir", str(work), *options, "--tag", tag]


def remove_leftovers(tag: str) -> list[str]:
    """The namespaces of `tag` still there once the run ended (the test asserts there are none),
    removed with `emulate --cleanup` so a failed run leaves nothing behind."""
    leftovers = list_namespaces(namespace_prefix(tag))
    if leftovers:
        subprocess.run([sys.executable, "-m", "lanscatter", "emulate", "--cleanup", "--tag", tag],
                       capture_output=True, timeout=60, check=False)
    return leftovers
