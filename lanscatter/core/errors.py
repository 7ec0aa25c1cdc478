"""Errors an operator can act on.

Every error the user may see is a `LanscatterError`: its message says what went wrong and its
`hint` what to do. The CLI turns them into `error: ... hint: ...` and an exit code in one place;
tracebacks are shown only with --debug.
"""

from __future__ import annotations


class LanscatterError(Exception):
    """Base of all errors shown to the user as `error: <message>` (+ `hint: <hint>`)."""

    exit_code: int = 1
    preformatted: bool = False      # the message is already `FILE:LINE:COL: error: ...` lines

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(LanscatterError):
    """Bad local input: options, folders, files."""

    exit_code = 2


class NoSpaceError(ConfigError):
    """The disk cannot hold what a folder needs; a node waits and tries again when told."""


class ManifestError(LanscatterError):
    """A manifest (usually from the network) is malformed or names a forbidden path."""


class RemoteProtocolError(LanscatterError):
    """The other side broke the protocol: malformed, unknown or out-of-order message."""


class LocalProtocolError(LanscatterError):
    """We tried to send something the protocol does not allow (a bug on this side)."""


class AuthError(LanscatterError):
    """The swarm secret was missing or wrong."""

    exit_code = 3


class VersionMismatch(LanscatterError):
    """The two sides speak protocol versions with no overlap."""

    exit_code = 4


class SignatureError(RemoteProtocolError):
    """A version not signed by the origin's key (unsigned, forged, another key, content changed)."""
