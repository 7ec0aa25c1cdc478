"""The origin's key on disk, and which key a host trusts (the I/O around `signing.py`).

- The private key is a PEM file (unencrypted PKCS#8, as `openssl pkey` reads it), created with mode
  0600 and never overwritten. `origin.key` is its name in a folder made by `lanscatter keys new`
  and in a master's state folder (the default when no --signing-key is given).
- A host trusts the key it is given (`--origin-key`, from the site tree), or else pins the key of
  the first signed version it accepts in `origin-key.pin` in its state folder and refuses every
  other key from then on (trust on first use).
- A host refuses a version the origin published before the newest it has taken (`newest-version`
  in its state folder: the publish time and generation): a relay or intruder that kept an older
  signed version cannot roll hosts back to it. The origin's publish times only grow, across its
  restarts too (`last-signed` in its state folder); going back to an older build is publishing it anew, or a rollback
  (`lanscatter rollback`), which switches among versions the hosts keep.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanscatter.core.errors import ConfigError, SignatureError
from lanscatter.core.manifest import Manifest
from lanscatter.core.signing import (
    CommitStatement,
    OriginKey,
    SignedVersion,
    VersionStatement,
    parse_origin_key,
    verify_commit,
    verify_version,
)
from lanscatter.disk.atomic_file import write_text_atomic

log = logging.getLogger("lanscatter.core.signing")

PRIVATE_KEY_FILE = "origin.key"
PIN_FILE = "origin-key.pin"
NEWEST_FILE = "newest-version"
NEWEST_COMMIT_FILE = "newest-commit"
LAST_SIGNED_FILE = "last-signed"         # the origin's: its last signing time (ms, a version or a commit), kept across restarts


def create_signing_key(path: Path) -> Ed25519PrivateKey:
    """A new key written to `path` (mode 0600); refuses to replace an existing file."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists", "keep the key you have (`lanscatter keys show` prints "
                          "its public half), or move it away first") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}", "check the folder and its permissions") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The private key in `path`; ConfigError naming the file when it is missing or not one."""
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}",
                          "create one with `lanscatter keys new --dir DIR`") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key ({exc})",
                          "create one with `lanscatter keys new --dir DIR`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 key",
                          "create one with `lanscatter keys new --dir DIR`")
    if mode & 0o077:
        log.warning("the signing key %s can be read by other users; `chmod 600 %s`", path, path)
    return key


def load_or_create_signing_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key in `path`, created first when there is none; (key, created)."""
    if path.exists():
        return load_signing_key(path), False
    return create_signing_key(path), True


class OriginTrust:
    """Which key may publish versions to this host (the configured one, or the pinned one), and
    the newest version it took, before which none is taken again."""

    def __init__(self, configured: OriginKey | None, pin_file: Path, newest_file: Path,
                 kept: Callable[[], tuple[int, str] | None] | None = None, kept_commit: Path | None = None) -> None:
        self.configured = configured
        self.pin_file = pin_file
        self.newest_file = newest_file
        # The newest version this host keeps beside its folder (publish time in ms, generation):
        # it was taken once, so the state folder's loss does not make older ones welcome again.
        self._kept = kept
        # ... and a copy of `newest-commit` there (its versions folder), for the same reason: an
        # old commit (an old rollback) sent again after the state folder is lost is still refused.
        self._kept_commit = kept_commit

    def pinned(self) -> OriginKey | None:
        text = _read_state(self.pin_file, "the pinned origin key ",
                           "delete the file to pin the next origin key, or pass --origin-key")
        if text is None:
            return None
        try:
            return parse_origin_key(text)
        except ValueError as exc:
            raise ConfigError(f"{self.pin_file} does not hold an origin key: {exc}",
                              "delete the file to pin the next origin key, or pass --origin-key") from None

    def check(self, manifest: Manifest, signed: SignedVersion | None, *, held: bool = False) -> VersionStatement:
        """The statement of a version this host may write; SignatureError otherwise. The first
        version accepted without a configured or pinned key pins its key. One published before
        the newest this host took is refused, unless `held`: this host's own saved version, taken
        earlier (a relay resuming before its upstream answers)."""
        trusted = self.configured or self.pinned()
        statement = verify_version(manifest, signed, trusted)
        newest = self.newest()
        if not held and _older(newest, statement.published_ms, statement.generation):
            assert newest is not None
            raise SignatureError(
                f"generation {statement.generation[:12]} was published before generation {newest[1][:12]}, "
                f"which this host took already ({_when(statement.published_ms)} against {_when(newest[0])}): "
                "an older version sent again is refused",
                "if the origin's clock is behind, set it right; to go back to an older build, publish "
                "it again at the origin (it is signed anew), or roll hosts back to a version they keep: "
                f"`lanscatter rollback` (`--tree` for all); to take it anyway, delete {self.newest_file} "
                "and the newer versions kept beside the folder")
        if trusted is None:
            write_text_atomic(self.pin_file, statement.key.text + "\n")
            log.warning("pinned the origin's key %s (first use, in %s): versions signed by any other key "
                        "are refused from now on", statement.key.text, self.pin_file)
        if newest is None or statement.published_ms > newest[0]:
            write_text_atomic(self.newest_file, f"{statement.published_ms} {statement.generation}\n")
        return statement

    def check_commit(self, generation: str, instead: str, signed: SignedVersion) -> CommitStatement:
        """The statement of a tree commit this host may follow: signed by the trusted key and not
        signed before the newest commit it followed (`newest-commit`: a relay cannot send an old
        commit, or an old rollback, again); SignatureError otherwise."""
        trusted = self.configured or self.pinned()
        if trusted is None:
            raise SignatureError(f"a commit of generation {generation[:12]} came before any version",
                                 "the origin sends its version first; check which master this host follows")
        statement = verify_commit(generation, instead, signed, trusted)
        path = self.newest_file.with_name(NEWEST_COMMIT_FILE)
        paths = [path] + ([self._kept_commit] if self._kept_commit is not None else [])
        hint = f"delete {' and '.join(map(str, paths))} to follow any commit the origin signed again"
        held = [_mark(q, hint) for q in paths]
        marks = [m for m in held if m is not None]
        newest, digest = (max(marks) if marks else None), _digest(signed.statement)
        if _older(newest, statement.signed_ms, digest):
            assert newest is not None
            raise SignatureError(
                f"the commit of generation {generation[:12]} was signed before the newest commit this host "
                f"followed ({_when(statement.signed_ms)} against {_when(newest[0])}): an older commit "
                "sent again is refused", f"if the origin's clock is behind, set it right; {hint}")
        mark = (statement.signed_ms, digest) if newest is None or statement.signed_ms > newest[0] else newest
        for q, had in zip(paths, held):
            if had != mark and q.parent.is_dir():   # (the versions folder is there once a version is)
                write_text_atomic(q, f"{mark[0]} {mark[1]}\n")
        return statement

    def newest(self) -> tuple[int, str] | None:
        """(publish time in ms, generation) of the newest version this host took, if any: the
        newer of `newest-version` and the newest version it keeps."""
        marks = [m for m in (_mark(self.newest_file, "delete the file to take any version the origin signed again"),
                             self._kept() if self._kept is not None else None) if m is not None]
        return max(marks) if marks else None


def _mark(path: Path, hint: str) -> tuple[int, str] | None:
    """A `newest-*` file: (signing time in ms, what was signed then), None when there is none."""
    text = _read_state(path, "", hint)
    if text is None:
        return None
    fields = text.split()
    if len(fields) != 2 or not fields[0].isdecimal() or len(fields[0]) > 16:
        raise ConfigError(f"{path} does not hold a time and what was signed then", hint)
    return int(fields[0]), fields[1]


def _older(newest: tuple[int, str] | None, signed_ms: int, what: str) -> bool:
    """Whether a statement signed at `signed_ms` about `what` comes before `newest` (the same time
    about something else counts as older: the origin's times only grow)."""
    return newest is not None and (signed_ms, what) != newest and signed_ms <= newest[0]


def _read_state(path: Path, what: str, hint: str) -> str | None:
    """The text of a small state file (None: there is none); ConfigError when it is unreadable."""
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what}{path}: {exc}", hint) from None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def last_signed(state_dir: Path) -> int:
    """The origin's last signing time (ms), 0 when none is known; a damaged file is reported and
    read as none (its next statement then takes the clock's time)."""
    path = state_dir / LAST_SIGNED_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return 0
    if not (text.isdecimal() and len(text) <= 16):
        log.warning("ignoring %s: it does not hold a time", path)
        return 0
    return int(text)


def note_signed(state_dir: Path, signed_ms: int) -> None:
    write_text_atomic(state_dir / LAST_SIGNED_FILE, f"{signed_ms}\n")
