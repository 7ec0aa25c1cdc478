"""The `publish` and `rollback --tree` requests to an origin's master, both sides (pure: nonces and
the clock passed in).

    client -> master   GET  /publish        -> {"nonce": <fresh from the master>}
    client -> master   POST /publish        body: {"nonce", "label", "allow_shrink"} (JSON)
                                            header X-Lanscatter-Mac: HMAC(K_publish, body), hex
    master -> client   200 {"generation", "label", "published_ms", "changed"}
                       409 {"error", "hint"}   (a guard refused the source: nothing published)
                       403 {"error"}           (wrong or missing secret, unknown or used nonce)
                       400 {"error"}           (malformed request: nothing changed)

    client -> master   GET  /rollback       -> {"nonce"}
    client -> master   POST /rollback       body: {"nonce", "to"} (JSON; "to": null or a label,
                                            generation or its prefix), MAC'd under K_rollback
    master -> client   200 {"generation", "label", "instead"}; 409, 403, 400 as above

K_publish and K_rollback are derived from the swarm secret's join key under their own labels, so
no other MAC of the swarm (handshake frames, chunk tokens, the other request) can pass for one. The nonce is issued by the
master, good for `NONCE_TTL_S` and used once: a recorded request cannot be replayed, and no clocks
need to agree. The MAC is checked before anything else in the body is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass

from lanscatter.core.auth import Auth
from lanscatter.core.errors import AuthError, RemoteProtocolError
from lanscatter.core.signing import MAX_LABEL_CHARS

PUBLISH_PATH = "/publish"
ROLLBACK_PATH = "/rollback"
MAC_HEADER = "X-Lanscatter-Mac"
MAX_BODY_BYTES = 4096
NONCE_TTL_S = 60.0
MAX_NONCES = 64                # outstanding nonces; the oldest is dropped past this
_NONCE_CHARS = (16, 128)
_KEYS = frozenset({"nonce", "label", "allow_shrink"})
_ROLLBACK_KEYS = frozenset({"nonce", "to"})
MAX_TO_CHARS = 200             # a label, or a generation (128 hex)


@dataclass(frozen=True, slots=True)
class PublishRequest:
    nonce: str
    label: str | None              # None: the mode's default (a release symlink's target name)
    allow_shrink: bool


@dataclass(frozen=True, slots=True)
class RollbackRequest:
    nonce: str
    to: str | None                 # None: the version committed before the current one


def publish_key(auth: Auth) -> bytes:
    return hmac.new(auth.join_key, b"publish request", hashlib.sha256).digest()


def rollback_key(auth: Auth) -> bytes:
    return hmac.new(auth.join_key, b"rollback request", hashlib.sha256).digest()


def seal_rollback(auth: Auth, request: RollbackRequest) -> tuple[bytes, str]:
    """The body and its MAC header value."""
    body = json.dumps({"nonce": request.nonce, "to": request.to}, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")
    return body, hmac.new(rollback_key(auth), body, hashlib.sha256).hexdigest()


def open_rollback(auth: Auth, body: bytes, mac: str | None, book: NonceBook, now: float) -> RollbackRequest:
    """Like `open_request`, for a tree-wide rollback."""
    data = _opened(rollback_key(auth), body, mac, "rollback")
    if set(data) != _ROLLBACK_KEYS:
        raise RemoteProtocolError("the rollback request does not have the fields nonce, to")
    nonce, to = _nonce(data, "rollback"), data["to"]
    if to is not None and not (isinstance(to, str) and 0 < len(to) <= MAX_TO_CHARS and to.isprintable()):
        raise RemoteProtocolError(f"a rollback's 'to' is printable text of 1 to {MAX_TO_CHARS} characters")
    if not book.take(nonce, now):
        raise AuthError("its nonce is unknown, expired or used already (a replayed request?)")
    return RollbackRequest(nonce, to)


def _opened(key: bytes, body: bytes, mac: str | None, what: str) -> dict[str, object]:
    """The JSON object of a request body, once its MAC under `key` checks out."""
    if len(body) > MAX_BODY_BYTES:
        raise RemoteProtocolError(f"a {what} request is at most {MAX_BODY_BYTES} bytes")
    want = hmac.new(key, body, hashlib.sha256).hexdigest()
    if not mac or not hmac.compare_digest(mac.encode("ascii", "replace"), want.encode("ascii")):
        raise AuthError("wrong or missing swarm secret")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RemoteProtocolError(f"the {what} request is not JSON") from None
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"the {what} request is not a JSON object")
    return data


def _nonce(data: dict[str, object], what: str) -> str:
    nonce = data["nonce"]
    if not isinstance(nonce, str) or not _NONCE_CHARS[0] <= len(nonce) <= _NONCE_CHARS[1]:
        raise RemoteProtocolError(f"the {what} request has a malformed nonce")
    return nonce


def seal_request(auth: Auth, request: PublishRequest) -> tuple[bytes, str]:
    """The body and its MAC header value."""
    body = json.dumps({"nonce": request.nonce, "label": request.label, "allow_shrink": request.allow_shrink},
                      separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return body, hmac.new(publish_key(auth), body, hashlib.sha256).hexdigest()


class NonceBook:
    """Nonces the master handed out and not yet used (bounded, each good for NONCE_TTL_S)."""

    def __init__(self) -> None:
        self._issued: OrderedDict[str, float] = OrderedDict()

    def issue(self, nonce: str, now: float) -> str:
        self._issued[nonce] = now + NONCE_TTL_S
        while len(self._issued) > MAX_NONCES:
            self._issued.popitem(last=False)
        return nonce

    def take(self, nonce: str, now: float) -> bool:
        """True once for a nonce issued here and not expired."""
        until = self._issued.pop(nonce, None)
        return until is not None and now <= until


def open_request(auth: Auth, body: bytes, mac: str | None, book: NonceBook, now: float) -> PublishRequest:
    """The request, once its MAC shows the secret and its nonce is fresh; AuthError when either
    fails, RemoteProtocolError when a sender with the secret sent something malformed."""
    data = _opened(publish_key(auth), body, mac, "publish")
    if set(data) != _KEYS:
        raise RemoteProtocolError("the publish request does not have the fields nonce, label, allow_shrink")
    nonce, label, allow_shrink = _nonce(data, "publish"), data["label"], data["allow_shrink"]
    if label is not None and not (isinstance(label, str) and len(label) <= MAX_LABEL_CHARS and label.isprintable()):
        raise RemoteProtocolError(f"a version label is printable text of at most {MAX_LABEL_CHARS} characters")
    if not isinstance(allow_shrink, bool):
        raise RemoteProtocolError("the publish request's allow_shrink is not true or false")
    if not book.take(nonce, now):
        raise AuthError("its nonce is unknown, expired or used already (a replayed request?)")
    return PublishRequest(nonce, label, allow_shrink)
