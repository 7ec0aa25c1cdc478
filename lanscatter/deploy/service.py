"""A standing deployment of one host as a systemd service: what to create, as values. Pure.

`service_plan` lists what a host needs to run its part of a site tree under systemd: a system user
and group, the sync folder and the work folder (owned by that user), a copy of the tree file, an
environment file that holds the swarm secret (root only, mode 0600: systemd reads it before it
drops privileges), and the unit, which runs `lanscatter up FILE --host X --headless`. The CLI
prints the plan or applies it (`service_cli.py`).

Unit rules: the roles run as the unprivileged user, with the file system read-only except the sync
folder and the work folder (`ProtectSystem=strict`; with host activation, the sync folder's parent,
where the folder's symlink is replaced and its versions kept); SIGTERM goes to `up` alone, which stops its
roles within 8 s, and systemd kills what is left after `TimeoutStopSec` (`KillMode=mixed`); a
crashed `up` is restarted (roles that crash are restarted by `up` itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lanscatter.core.version_plan import VERSIONS_SUFFIX, beside_name
from lanscatter.topology.derive import DeploymentPlan, HostPlan

DEFAULT_USER = "lanscatter"
DEFAULT_CONFIG_DIR = Path("/etc/lanscatter")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_STATE_DIR = Path("/var/lib/lanscatter-up")
STOP_TIMEOUT_S = 20              # `up` gives its roles 8 s after SIGTERM before it kills them
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    program: tuple[str, ...]     # how to run lanscatter on the host, e.g. ("/usr/local/bin/lanscatter",)
    user: str = DEFAULT_USER
    config_dir: Path = DEFAULT_CONFIG_DIR
    unit_dir: Path = DEFAULT_UNIT_DIR
    state_dir: Path = DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class Folder:
    path: Path
    owner: str                   # a user name; "root" for configuration
    mode: int


@dataclass(frozen=True, slots=True)
class FileToWrite:
    path: Path
    mode: int
    content: str
    secret: bool = False         # printed masked; never replaced once it exists (it holds the secret)


@dataclass(frozen=True, slots=True)
class ServicePlan:
    unit_name: str
    user: str
    folders: tuple[Folder, ...]
    files: tuple[FileToWrite, ...]
    exec_start: tuple[str, ...]
    notes: tuple[str, ...]       # what the operator must do beyond these files


def unit_name(plan: DeploymentPlan) -> str:
    return f"lanscatter-{plan.dataset.name}.service"


def unit_word(arg: str) -> str:
    """One word of a unit's command line: specifiers (`%`) and variables (`$`) escaped, quoted
    when it holds anything but plain characters."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(arg):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_line(name: str, value: str) -> str:
    """`NAME="value"` as systemd's EnvironmentFile reads it (backslash and double quote escaped)."""
    return f'{name}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"\n'


def service_plan(plan: DeploymentPlan, host: HostPlan, opts: ServiceOptions, secret: str | None) -> ServicePlan:
    """What host `host` needs; `secret` is the value for the environment file (None: the tree does
    not read the secret from the environment)."""
    name = unit_name(plan)
    dataset = plan.dataset.name
    tree = opts.config_dir / f"{dataset}.yaml"
    env_file = opts.config_dir / f"{dataset}.env"
    workdir = opts.state_dir / dataset
    exec_start = (*opts.program, "up", str(tree), "--host", host.name, "--headless", "--workdir", str(workdir))
    writable = [workdir] if host.role == "master" else [host.folder, workdir]
    folders = [Folder(opts.config_dir, "root", 0o755), Folder(opts.state_dir, opts.user, 0o750),
               Folder(workdir, opts.user, 0o750)]
    notes = []
    if host.role != "master":
        folders.append(Folder(host.folder, opts.user, 0o755))
        if host.activate != "per-file":
            # Host activation replaces the folder's entry by a symlink to a version kept beside it.
            versions = host.folder.with_name(beside_name(host.folder.name, VERSIONS_SUFFIX))
            writable = [host.folder.parent, workdir]
            folders.append(Folder(versions, opts.user, 0o755))
            notes.append(f"{host.folder} becomes a symlink to a version kept in {versions}: user {opts.user} "
                         f"must be able to write {host.folder.parent} (or set activate: per-file)")
    ref = plan.dataset.secret
    files = []
    if ref.kind == "env":
        files.append(FileToWrite(env_file, 0o600, env_line(ref.ref, secret or ""), secret=True))
    elif ref.kind == "file":
        notes.append(f"the swarm secret is read from {ref.ref}: put it there, readable by user {opts.user} only")
    if host.role == "master":
        notes.append(f"user {opts.user} must be able to read the data set source {plan.dataset.source}")
    lines = [
        f"# Written by `lanscatter service`: host {host.name} of data set {dataset}.",
        "[Unit]",
        f"Description=lanscatter {dataset}: host {host.name} ({host.role}, site {host.site})",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={opts.user}",
        f"Group={opts.user}",
    ]
    if ref.kind == "env":
        lines.append(f"EnvironmentFile={unit_word(str(env_file))}")
    lines += [
        f"ExecStart={' '.join(unit_word(a) for a in exec_start)}",
        "Restart=on-failure",
        "RestartSec=5s",
        "KillMode=mixed",
        f"TimeoutStopSec={STOP_TIMEOUT_S}s",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        f"ReadWritePaths={' '.join(unit_word(str(p)) for p in writable)}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    files += [FileToWrite(tree, 0o644, ""),           # the tree file's own bytes: filled by the CLI
              FileToWrite(opts.unit_dir / name, 0o644, "\n".join(lines))]
    return ServicePlan(name, opts.user, tuple(folders), tuple(files), exec_start, tuple(notes))


def describe(service: ServicePlan, user_exists: bool) -> list[str]:
    """The plan as lines for the operator (the secret masked)."""
    out = []
    if not user_exists:
        out.append(f"create system user and group {service.user} (no login shell, no home)")
    for f in service.folders:
        out.append(f"create folder {f.path} (owner {f.owner}, mode {f.mode:o})")
    for w in service.files:
        out.append(f"write {w.path} (mode {w.mode:o})" + (":" if w.content else " (a copy of FILE)"))
        if w.secret:
            out += [f"    {line.split('=', 1)[0]}=<the swarm secret>" for line in w.content.splitlines()]
        elif w.content:
            out += [f"    {line}" if line else "" for line in w.content.splitlines()]
    out += service.notes
    return out


def next_steps(service: ServicePlan, opts: ServiceOptions, plan: DeploymentPlan) -> list[str]:
    logs = opts.state_dir / plan.dataset.name / "logs"
    return [f"then: systemctl daemon-reload && systemctl enable --now {service.unit_name}",
            f"logs: journalctl -u {service.unit_name} (this host's `up`), each role's in {logs}"]
