"""`lanscatter service FILE [--host X] [--write]`: a host's part of a site tree as a systemd service.

Without --write it only prints what it would do (the secret masked), so the plan can be read
first, on any machine. With --write it applies it on this host: creates the user if missing, the
folders, the tree file's copy, the environment file (only when missing: it holds the secret, and
is never replaced) and the unit. It never starts or enables the service: it says how.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from lanscatter.core.errors import ConfigError
from lanscatter.deploy.portable import relative_paths
from lanscatter.deploy.service import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_STATE_DIR,
    DEFAULT_UNIT_DIR,
    DEFAULT_USER,
    ServiceOptions,
    ServicePlan,
    describe,
    next_steps,
    service_plan,
)
from lanscatter.topology.derive import derive_plan
from lanscatter.topology.hostmatch import local_identity, select_host
from lanscatter.topology.validate import load_topology


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _program(args: argparse.Namespace) -> tuple[str, ...]:
    if args.lanscatter:
        return (args.lanscatter,)
    found = shutil.which("lanscatter")
    return (found,) if found else (sys.executable, "-m", "lanscatter")


def cmd_service(args: argparse.Namespace) -> int:
    file = Path(args.file)
    topo = load_topology(file)
    moved = relative_paths(topo)
    if moved:
        raise ConfigError(f"{file}: {', '.join(moved)} would be read relative to the copy in {args.config_dir}",
                          "make these paths absolute")
    plan = derive_plan(topo)
    host = select_host(plan.hosts, local_identity(), args.host, str(file))
    opts = ServiceOptions(_program(args), args.user, Path(args.config_dir), Path(args.unit_dir),
                          Path(args.state_dir))
    # The secret is read (from this environment) only to write an environment file that is missing.
    needed = plan.dataset.secret.kind == "env" and args.write and not _has_env_file(opts, plan.dataset.name)
    secret = plan.dataset.secret_value() if needed else None
    service = service_plan(plan, host, opts, secret)
    exists = _user_exists(opts.user)
    if not args.write:
        print(f"# {service.unit_name} for host {host.name}: what `--write` would do on that host")
        print("\n".join(describe(service, exists)))
        return 0
    _apply(service, file.read_bytes(), exists)
    for line in ["written:", *describe(service, True), *next_steps(service, opts, plan)]:
        print(line)
    return 0


def _has_env_file(opts: ServiceOptions, dataset: str) -> bool:
    return (opts.config_dir / f"{dataset}.env").exists()


def _apply(service: ServicePlan, tree: bytes, user_exists: bool) -> None:
    try:
        if not user_exists:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", service.user], check=True, capture_output=True,
                           text=True, timeout=60)
        owner = pwd.getpwnam(service.user)
        for f in service.folders:
            f.path.mkdir(parents=True, exist_ok=True)
            os.chmod(f.path, f.mode)
            if f.owner != "root":
                os.chown(f.path, owner.pw_uid, owner.pw_gid)
        for w in service.files:
            if w.secret and w.path.exists():
                continue                    # never replace a secret already in place
            data = w.content.encode() if w.content else tree
            w.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = w.path.with_name(w.path.name + ".part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, w.mode)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, w.mode)
            os.replace(tmp, w.path)
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"cannot create user {service.user}: {exc.stderr.strip()}",
                          "run as root, or create the user yourself") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot set up the service: {exc}", "run as root (or choose folders with "
                          "--config-dir/--unit-dir/--state-dir that you can write)") from exc


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "service", help="run a host's part of a site tree as a systemd service (prints, or --write)",
        description="Print what a host needs to run its part of a site tree as a systemd service: a "
        "system user, its folders, a copy of FILE, an environment file with the swarm secret and the "
        "unit, which runs `lanscatter up FILE --host X --headless`. --write does it on this host "
        "(as root); it never starts the service. See docs/deploy.md.")
    p.add_argument("file", metavar="FILE", help="the site-tree YAML file")
    p.add_argument("--host", metavar="NAME", help="the host (default: the host this machine is)")
    p.add_argument("--write", action="store_true",
                   help="do it: create the user, folders and files on this host (an existing environment "
                   "file, which holds the secret, is kept)")
    p.add_argument("--user", default=DEFAULT_USER, metavar="NAME",
                   help=f"the system user the roles run as (default {DEFAULT_USER}; created if missing)")
    p.add_argument("--lanscatter", metavar="PATH",
                   help="the lanscatter program the unit runs (default: the one on PATH, else this Python)")
    p.add_argument("--config-dir", default=str(DEFAULT_CONFIG_DIR), metavar="DIR",
                   help=f"where the tree file's copy and the environment file go (default {DEFAULT_CONFIG_DIR})")
    p.add_argument("--unit-dir", default=str(DEFAULT_UNIT_DIR), metavar="DIR",
                   help=f"where the unit goes (default {DEFAULT_UNIT_DIR})")
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), metavar="DIR",
                   help=f"work folders (hash caches, journals, role logs), one per data set (default "
                   f"{DEFAULT_STATE_DIR})")
    p.set_defaults(func=cmd_service)
