"""The join handshake and the sealed control channel, both sides, sans-I/O.

Both ends prove the swarm secret, and every frame after the handshake is bound to this one
connection. Nothing here touches a socket or a clock: frames come in as the websocket delivered
them (text or bytes), frames to send go out as return values, nonces are passed in.

    M -> P  Challenge   text: nonce_m, protocol range
    P -> M  Hello       sealed under K_hello = MAC(K_join, "hello" | nonce_m): nonce_p, the address
                        the peer connects from, its name, ports and slots
    M -> P  Welcome     sealed under the session key S = MAC(K_join, "session" | nonce_m | nonce_p |
                        H(hello)): the master's proof, fresh for this peer's nonce
            or Error    text, and the master closes (wrong secret, no common version, address)
    both    every later frame sealed under S

A sealed frame is a binary websocket frame: MAC(key, direction | sequence number | body) (32
bytes), then the body (one JSON message, protocol.py). Each side counts the frames it sent and
received, so a frame that is forged, replayed, reordered, reflected or dropped fails the MAC of
the next one: the connection is closed (RemoteProtocolError), never the node.

Why this shape: the peer acts on nothing before a Welcome that only a holder of the secret could
seal for its own fresh nonce, so a fake master is refused before it can say anything; an intruder
relaying a handshake never learns S, so it can neither send frames into the session nor read a
usable one out of it; and the Hello names the address the peer connects from, which the master
compares with the address it sees (unless told a NAT sits between them), so a relayed join is
refused instead of being granted chunk tokens bound to the relay's address.

States (each side's object moves only along these rows; anything else is a LocalProtocolError):

    side    state            call                 next state       returns
    master  START            challenge()          AWAIT_HELLO      Challenge frame (text)
    master  AWAIT_HELLO      receive_hello()      ACCEPTED         Accepted (hello, version)
                                                  REFUSED          Refused (Error frame, text)
    master  ACCEPTED         welcome(name)        JOINED           Welcome frame (bytes), Channel
    peer    START            receive_challenge()  AWAIT_WELCOME    Hello frame (bytes)
    peer    AWAIT_WELCOME    receive_welcome()    JOINED           Welcome; .channel is set
A call that raises leaves its side in FAILED.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import Enum

from lanscatter.core import protocol as p
from lanscatter.core.auth import SECRET_HINT, Auth, normal_ip
from lanscatter.core.errors import (
    AuthError,
    LanscatterError,
    LocalProtocolError,
    RemoteProtocolError,
    VersionMismatch,
)

MAC_BYTES = 32
_TO_PEER, _TO_MASTER = b"M", b"P"       # the direction byte: who sealed the frame
_MIN_NONCE, _MAX_NONCE = 16, 128


class State(Enum):
    START = "start"
    AWAIT_HELLO = "await-hello"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    AWAIT_WELCOME = "await-welcome"
    JOINED = "joined"
    FAILED = "failed"


_MASTER_MOVES = {
    (State.START, "challenge"): State.AWAIT_HELLO,
    (State.AWAIT_HELLO, "receive_hello"): State.ACCEPTED,     # or REFUSED
    (State.ACCEPTED, "welcome"): State.JOINED,
}
_PEER_MOVES = {
    (State.START, "receive_challenge"): State.AWAIT_WELCOME,
    (State.AWAIT_WELCOME, "receive_welcome"): State.JOINED,
}


class Channel:
    """The sealing of one connection's frames in both directions, after the handshake."""

    def __init__(self, key: bytes, *, sends: bytes, receives: bytes) -> None:
        # Keyed once: each frame's MAC starts from a copy (a new HMAC a frame cost 2-3 µs more,
        # on every frame of every connection).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._sends, self._receives = sends, receives
        self._sent = self._received = 0

    def seal(self, body: bytes) -> bytes:
        return self.seal_pieces([body])

    def seal_pieces(self, pieces: list[bytes]) -> bytes:
        """The frame of the body these pieces make, joined once with its MAC (a manifest frame is
        tens of megabytes: not joined into a body and copied again behind the MAC)."""
        mac = _mac(self._keyed, self._sends, self._sent, *pieces)
        self._sent += 1
        return b"".join([mac, *pieces])

    def open(self, frame: bytes, them: str) -> bytes:
        """The body of the next frame from the other side; RemoteProtocolError when it was not
        sealed by them under this connection's key as their next frame."""
        if len(frame) < MAC_BYTES or not hmac.compare_digest(
                frame[:MAC_BYTES], _mac(self._keyed, self._receives, self._received, memoryview(frame)[MAC_BYTES:])):
            raise RemoteProtocolError(f"{them} sent a frame that fails its MAC (forged, replayed or out of order)")
        self._received += 1
        return frame[MAC_BYTES:]


@dataclass(frozen=True, slots=True)
class Accepted:
    hello: p.Hello
    version: int


@dataclass(frozen=True, slots=True)
class Refused:
    error: p.Error
    frame: str           # the Error, to send as a text frame before closing


def seal_hello(auth: Auth, challenge_nonce: str, body: bytes) -> bytes:
    """A Hello frame: `body` sealed under the key of this challenge."""
    return _hello_channel(auth, challenge_nonce, sends=_TO_MASTER).seal(body)


class MasterHandshake:
    def __init__(self, auth: Auth, nonce: str, *, software: str) -> None:
        self._auth = auth
        self._nonce = nonce
        self._software = software
        self._accepted: Accepted | None = None
        self._hello_digest = b""
        self.state = State.START

    def challenge(self) -> str:
        self._move(_MASTER_MOVES, "challenge")
        return p.encode(p.Challenge(self._nonce, p.PROTOCOL_VERSION, p.MIN_PROTOCOL_VERSION, self._software))

    def receive_hello(self, frame: str | bytes, *, seen_from: str, allow_nat: bool, them: str) -> Accepted | Refused:
        """Check a Hello: sealed with the secret for our challenge, a common protocol version, sent
        from the address we see it from (unless `allow_nat`). Malformed: RemoteProtocolError."""
        self._move(_MASTER_MOVES, "receive_hello")
        self.state = State.FAILED
        if isinstance(frame, str):
            raise RemoteProtocolError(f"{them} sent a text frame where a sealed hello belongs: {frame!r:.80}")
        try:
            body = _hello_channel(self._auth, self._nonce, sends=_TO_PEER).open(frame, them)
        except RemoteProtocolError:
            return self._refuse("auth", "wrong or missing swarm secret")
        hello = p.decode(body, them)
        if not isinstance(hello, p.Hello):
            raise RemoteProtocolError(f"expected hello first, got {hello.TYPE!r}")
        _check_nonce(hello.nonce, them)
        try:
            version = p.negotiate((p.MIN_PROTOCOL_VERSION, p.PROTOCOL_VERSION),
                                  (hello.min_protocol, hello.protocol), hello.name or them)
        except RemoteProtocolError as exc:
            return self._refuse("version", str(exc))
        said, seen = normal_ip(hello.addr), normal_ip(seen_from)
        if said != seen and not allow_nat:
            return self._refuse("address", f"the peer says it connects from {said:.64}, but the master sees "
                                           f"{seen}: something between them relays or translates addresses")
        self._hello_digest = hashlib.sha256(body).digest()
        self._accepted = Accepted(hello, version)
        self.state = State.ACCEPTED
        return self._accepted

    def welcome(self, name: str, clock_ms: int = 0) -> tuple[bytes, Channel]:
        """The sealed Welcome (the master's proof, with its wall clock `clock_ms`) and the channel
        for every later frame."""
        self._move(_MASTER_MOVES, "welcome")
        assert self._accepted is not None
        channel = Channel(_session_key(self._auth, self._nonce, self._accepted.hello.nonce, self._hello_digest),
                          sends=_TO_PEER, receives=_TO_MASTER)
        frame = channel.seal(p.encode(p.Welcome(name, self._accepted.version, clock_ms)).encode())
        return frame, channel

    def _refuse(self, code: str, message: str) -> Refused:
        self.state = State.REFUSED
        error = p.Error(code, message)
        return Refused(error, p.encode(error))

    def _move(self, moves: dict[tuple[State, str], State], call: str) -> None:
        self.state = _next(moves, self.state, call)


class PeerHandshake:
    """`hello` is what this peer says of itself; its nonce must be fresh for each connection."""

    def __init__(self, auth: Auth, hello: p.Hello, *, them: str = "the master") -> None:
        self._auth = auth
        self._hello = hello
        self._them = them
        self._nonce = ""
        self._hello_digest = b""
        self.channel: Channel | None = None
        self.state = State.START

    def receive_challenge(self, frame: str | bytes) -> bytes:
        """The sealed Hello answering the master's Challenge."""
        self.state = _next(_PEER_MOVES, self.state, "receive_challenge")
        self.state = State.FAILED
        challenge = p.decode(frame, self._them)
        if not isinstance(challenge, p.Challenge):
            raise RemoteProtocolError(f"{self._them} sent {challenge.TYPE!r} before its challenge")
        _check_nonce(challenge.nonce, self._them)
        try:
            p.negotiate((p.MIN_PROTOCOL_VERSION, p.PROTOCOL_VERSION),
                        (challenge.min_protocol, challenge.protocol), self._them)
        except RemoteProtocolError as exc:
            raise VersionMismatch(str(exc), "install the same lanscatter version on both") from None
        self._nonce = challenge.nonce
        body = p.encode(self._hello).encode()
        self._hello_digest = hashlib.sha256(body).digest()
        self.state = State.AWAIT_WELCOME
        return seal_hello(self._auth, self._nonce, body)

    def receive_welcome(self, frame: str | bytes) -> p.Welcome:
        """The master's Welcome, sealed with the secret for our nonce; a refusal raises the
        error the operator sees; anything else unsealed is a master that did not prove the secret."""
        self.state = _next(_PEER_MOVES, self.state, "receive_welcome")
        self.state = State.FAILED
        if isinstance(frame, str):
            msg = p.decode(frame, self._them)
            if isinstance(msg, p.Error):
                raise _refusal(msg)
            raise AuthError(f"{self._them} sent {msg.TYPE!r} before proving the swarm secret: it is not "
                            "the master of this swarm, or something between pretends to be", _PROVE_HINT)
        channel = Channel(_session_key(self._auth, self._nonce, self._hello.nonce, self._hello_digest),
                          sends=_TO_MASTER, receives=_TO_PEER)
        try:
            body = channel.open(frame, self._them)
        except RemoteProtocolError:
            raise AuthError(f"{self._them} did not prove the swarm secret: it is not the master of this "
                            "swarm, or its secret differs", _PROVE_HINT) from None
        welcome = p.decode(body, self._them)
        if not isinstance(welcome, p.Welcome):
            raise RemoteProtocolError(f"{self._them} sent {welcome.TYPE!r} instead of welcome")
        self.channel = channel
        self.state = State.JOINED
        return welcome


_PROVE_HINT = "check the master's address and port, and that it and this node use the same secret"


def _refusal(error: p.Error) -> LanscatterError:
    text = f"the master refused this peer: {error.message:.300}"
    if error.code == "auth":
        return AuthError(text, SECRET_HINT)
    if error.code == "version":
        return VersionMismatch(text, "install the same lanscatter version on both")
    if error.code == "address":
        return AuthError(text, "connect directly (no relay or proxy in between); if a NAT between this host "
                               "and the master is expected, start the master with --allow-nat")
    return LanscatterError(text)


def _check_nonce(nonce: str, them: str) -> None:
    if not _MIN_NONCE <= len(nonce) <= _MAX_NONCE:
        raise RemoteProtocolError(f"{them} sent a nonce of {len(nonce)} characters")


def _next(moves: dict[tuple[State, str], State], state: State, call: str) -> State:
    nxt = moves.get((state, call))
    if nxt is None:
        raise LocalProtocolError(f"{call}() is not allowed in state {state.value}")
    return nxt


def _hello_channel(auth: Auth, challenge_nonce: str, *, sends: bytes) -> Channel:
    key = hmac.new(auth.join_key, b"hello\0" + challenge_nonce.encode(), hashlib.sha256).digest()
    return Channel(key, sends=sends, receives=_TO_PEER if sends == _TO_MASTER else _TO_MASTER)


def _session_key(auth: Auth, nonce_m: str, nonce_p: str, hello_digest: bytes) -> bytes:
    text = b"\0".join((b"session", nonce_m.encode(), nonce_p.encode(), hello_digest))
    return hmac.new(auth.join_key, text, hashlib.sha256).digest()


def _mac(keyed: hmac.HMAC, direction: bytes, seq: int, *body: bytes | memoryview) -> bytes:
    # The body is fed on its own, piece by piece: joined to the prefix it would be copied (a
    # manifest frame is tens of megabytes).
    mac = keyed.copy()
    mac.update(direction + seq.to_bytes(8, "big"))
    for piece in body:
        mac.update(piece)
    return mac.digest()
