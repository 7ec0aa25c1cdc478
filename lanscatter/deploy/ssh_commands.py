"""What `lanscatter up FILE --ssh` runs on each host, and how it reads the answers. Pure.

Rules:
- The user's own `ssh` client makes every connection (their config, agent, known hosts, jump
  hosts), in batch mode: a host that would ask for a password or a new host key fails with ssh's
  own reason instead of prompting (one prompt per host of a tree would be unusable).
- One SSH session per host does everything: it prints the host's `lanscatter --version`, then
  waits for the control host's word; on `go` it reads the secret and the tree file from its input
  and starts `lanscatter up FILE --host X --headless`.
- Nothing secret is ever on a command line: the remote side reads the swarm secret from its
  standard input (the SSH channel) with the shell's `read` built-in and exports it.
- The remote `up` stops when the channel's standard input ends: the control host stops a host by
  closing it (or by losing the connection), and the remote shell then sends SIGTERM to the one
  process it started and passes on its exit status. Nothing else on the host is signalled.
- Every value that reaches a remote shell is quoted (`shlex.quote`); environment variable names are
  checked against the shell's rules.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from lanscatter.core.errors import ConfigError

SECRET_ENV = "LANSCATTER_SECRET"
# ssh exits 255 when it could not connect or authenticate; a shell exits 127 for a missing command.
SSH_FAILED = 255
COMMAND_NOT_FOUND = 127
STOPPED_BEFORE_START = 96      # the session's input ended (or said no) before `up` started
CANNOT_STORE_TREE = 98
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSION = re.compile(r"lanscatter (\S+)(?: \(protocol (\d+)\.\.(\d+)\))?")


@dataclass(frozen=True, slots=True)
class SshOptions:
    """How to reach the hosts: the user's ssh, with these additions."""

    ssh: str = "ssh"                       # the client program
    config: str | None = None              # -F FILE
    user: str | None = None                # -l USER
    options: tuple[str, ...] = ()          # -o KEY=VALUE, in order
    connect_timeout_s: int = 10


@dataclass(frozen=True, slots=True)
class RemoteRun:
    """What runs on one host: where lanscatter is, the tree file there, and the `up` options."""

    lanscatter: str                        # the remote program (a name on PATH, or a path)
    tree_file: str                         # the site-tree file on the host
    host: str                              # the host's name in the tree (`up --host`)
    workdir: str | None = None             # `up --workdir`
    secret_env: str | None = None          # another variable the tree names for the secret
    copy: bool = False                     # the session brings the tree file (to `tree_file`)
    on_synced: str | None = None           # `up --on-synced` (a host's own on_synced in the tree wins)


def ssh_argv(opts: SshOptions, destination: str, remote_command: str) -> list[str]:
    """The local command line that runs `remote_command` on `destination` (no terminal on the host)."""
    argv = [opts.ssh, "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={opts.connect_timeout_s}",
            # a host that went away is noticed within ~15 s, and its session ends on both sides
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if opts.config:
        argv += ["-F", opts.config]
    if opts.user:
        argv += ["-l", opts.user]
    for option in opts.options:
        argv += ["-o", option]
    return [*argv, "--", destination, remote_command]


def session_command(run: RemoteRun) -> str:
    """The remote shell command of a host's one SSH session (see the module's rules). Runs under
    `sh` whatever the login shell is. In order:
    1. prints `lanscatter --version` (exit 127 when it is not installed);
    2. reads one line: `go` to go on, anything else (or the input's end) to stop there (exit 96);
    3. reads the secret's line and exports it;
    4. with `run.copy`: reads a byte count and that many bytes, the tree file, stored in a
       temporary file renamed into place (exit 98 when it cannot be stored whole);
    5. runs `up` until standard input ends, then stops it and exits with its status."""
    if run.secret_env is not None and not _ENV_NAME.fullmatch(run.secret_env):
        raise ConfigError(f"the secret's environment variable {run.secret_env!r} is not a valid name",
                          "use letters, digits and underscores, not starting with a digit")
    up = [run.lanscatter, "up", run.tree_file, "--host", run.host, "--headless"]
    if run.workdir is not None:
        up += ["--workdir", run.workdir]
    if run.on_synced is not None:
        up += ["--on-synced", run.on_synced]
    also = ""
    if run.secret_env and run.secret_env != SECRET_ENV:
        also = f' {run.secret_env}="$LANSCATTER_SECRET"; export {run.secret_env};'
    copy = ""
    if run.copy:
        folder = run.tree_file.rpartition("/")[0]
        part = shlex.quote(run.tree_file + ".part.") + "$$"      # $$: the remote shell's pid, unquoted
        mkdir = f"mkdir -p {shlex.quote(folder)} && " if folder else ""
        copy = (
            "IFS= read -r size || exit 96\n"
            f'{mkdir}head -c "$size" > {part} && [ "$(wc -c < {part})" -eq "$size" ] '
            f"&& mv -f {part} {shlex.quote(run.tree_file)} || {{ rm -f {part}; exit 98; }}\n"
        )
    script = (
        f"v=$({shlex.quote(run.lanscatter)} --version) || exit $?\n"
        'printf "%s\\n" "$v"\n'
        'IFS= read -r go && [ "$go" = go ] || exit 96\n'
        "IFS= read -r LANSCATTER_SECRET || exit 96\n"
        f'if [ -n "$LANSCATTER_SECRET" ]; then export LANSCATTER_SECRET;{also} '
        "else unset LANSCATTER_SECRET; fi\n"
        f"{copy}"
        "exec 3<&0\n"
        f"{shlex.join(up)} </dev/null &\n"
        "pid=$!\n"
        "trap 'kill -TERM $pid 2>/dev/null' HUP INT TERM\n"
        # the channel's input ends (closed, or the connection lost): stop the one process started here
        "( while IFS= read -r _; do :; done; kill -TERM $pid 2>/dev/null ) <&3 >/dev/null 2>&1 &\n"
        "watch=$!\n"
        "exec 3<&-\n"
        "rc=0\n"
        "while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done\n"
        "kill $watch 2>/dev/null\n"
        "exit $rc\n"
    )
    return f"exec sh -c {shlex.quote(script)}"


def go_message(secret: str | None, tree: bytes | None) -> bytes:
    """What the control host sends once a host's version passed: go, the secret, the tree file."""
    out = b"go\n" + secret_line(secret)
    if tree is not None:
        out += f"{len(tree)}\n".encode() + tree
    return out


def secret_line(secret: str | None) -> bytes:
    """The line that carries the secret (empty: none)."""
    if secret is None:
        return b"\n"
    if "\n" in secret or "\r" in secret or "\0" in secret:
        raise ConfigError("the swarm secret spans several lines", "use a secret on one line")
    return secret.encode() + b"\n"


@dataclass(frozen=True, slots=True)
class RemoteVersion:
    version: str
    protocol: tuple[int, int] | None       # None: an installation that does not say (older)


def parse_version(output: str) -> RemoteVersion | None:
    """The first `lanscatter X [(protocol A..B)]` line of `lanscatter --version`, or None."""
    for line in output.splitlines():
        m = _VERSION.fullmatch(line.strip())
        if m:
            proto = (int(m.group(2)), int(m.group(3))) if m.group(2) else None
            return RemoteVersion(m.group(1), proto)
    return None


def compatibility_problem(ours: RemoteVersion, theirs: RemoteVersion) -> str | None:
    """Why a host's lanscatter cannot join this tree (naming the side to upgrade), or None."""
    if theirs.protocol is None or ours.protocol is None:
        if theirs.version == ours.version:
            return None
        return (f"it has lanscatter {theirs.version}, which does not say its protocol versions; this "
                f"host has {ours.version}: install {ours.version} there")
    lo, hi = max(ours.protocol[0], theirs.protocol[0]), min(ours.protocol[1], theirs.protocol[1])
    if lo <= hi:
        return None
    side = "that host" if theirs.protocol[1] < ours.protocol[0] else "this control host"
    return (f"no common protocol version: it speaks {theirs.protocol[0]}..{theirs.protocol[1]} "
            f"(lanscatter {theirs.version}), this control host {ours.protocol[0]}..{ours.protocol[1]} "
            f"(lanscatter {ours.version}); upgrade {side}")


def last_lines(output: str, count: int = 3, width: int = 300) -> str:
    """The last non-empty lines of a remote output, shortened and with control characters escaped
    (it comes from another host and goes to this terminal)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()][-count:]
    text = " / ".join(lines)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= width else text[: width - 1] + "…"


def unreachable_reason(code: int | None, stderr: str) -> str:
    """What a failed check says, for the list of hosts that could not be used."""
    said = last_lines(stderr, count=1)
    if code == COMMAND_NOT_FOUND:
        return "lanscatter is not installed there (or not on the PATH of a non-interactive shell)"
    return said or f"ssh exited with {code}"

