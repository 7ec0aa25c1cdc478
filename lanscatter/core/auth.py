"""The swarm secret: its strength, its stretched key, and chunk authorisation (pure: the clock is
passed in).

Rules:
- A secret shorter than MIN_SECRET_CHARS is refused where it enters (the CLI, `lanscatter up`):
  everything an eavesdropper records (MACs over known nonces) lets it test guesses offline, so the
  secret must be beyond guessing. It is stretched once, at start, with scrypt (memory-hard) under a
  fixed domain-separation salt, so each guess costs tens of milliseconds and 32 MiB as well.
- The stretched key (`SwarmKey`) is made once per process by whatever reads the secret (the CLI)
  and handed to every `Auth` of that process; a supervisor that starts several roles on one host
  (`lanscatter up`, `emulate`) stretches once and gives its roles the stretched key in their
  environment (SWARM_KEY_ENV, in place of the secret), so N roles cost one scrypt, not N. It is
  worth as much as the secret to this swarm, no more (the secret itself stays with the supervisor),
  and, like the secret, never touches the disk.
- Every key in use is derived from the stretched key with a label: the join handshake's keys
  (handshake.py) and the chunk key. The secret itself never crosses the wire.
- No secret (`--insecure`, or a node built in-process without one): a fixed, public root key. The
  handshake then runs exactly as with a secret but proves nothing, and the chunk server lets every
  request through. A node with a secret never accepts one without it (their keys differ).

Chunk authorisation: the master puts a token in every Download, a MAC under the chunk key over
(chunk, requester address, source address, expiry). The source's chunk server recomputes it from
what it sees itself (the requested chunk, the connection's remote address, its own local address
and port), so a token is good for one chunk, from one host, at one source, until it expires, and
nothing else. It expires by the master's clock: a source checks it by its master's clock as
learned at its join (the Welcome says the master's time; `master_clock_offset`), so hosts' clocks
need not agree (a host whose clock was set in local time, or never set, still serves). CLOCK_SKEW_S
is the error allowed in that estimate, and between the clocks where a master does not say its time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets as _secrets
from dataclasses import dataclass, field
from functools import lru_cache

from lanscatter.core.errors import ConfigError

TOKEN_HEADER = "X-Lanscatter-Token"
MIN_SECRET_CHARS = 16
TOKEN_TTL_S = 120          # a token is needed only until its request reaches the source
CLOCK_SKEW_S = 30          # how far off a source's idea of its master's clock may be
_MAX_TOKEN_CHARS = 256
_KDF_SALT = b"lanscatter swarm secret v1"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1, "maxmem": 64 * 2**20, "dklen": 32}
_INSECURE_ROOT = hashlib.sha256(b"lanscatter: no swarm secret").digest()
SWARM_KEY_ENV = "LANSCATTER_SWARM_KEY"       # the stretched key, 64 hex digits (see the header)
_KEY_HEX = re.compile(r"[0-9a-f]{64}")
SECRET_HINT = ("make one with `lanscatter secret new` and give it to every node with --secret-file "
               "PATH or the environment variable LANSCATTER_SECRET")


def check_secret(secret: str) -> None:
    """Refuse a secret too short to resist offline guessing."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"the swarm secret has {len(secret)} characters; at least {MIN_SECRET_CHARS} "
                          "are needed, or whoever records the traffic can guess it offline", SECRET_HINT)


def new_secret() -> str:
    """A secret with 256 bits of randomness, in characters safe in a file, a variable or YAML."""
    return _secrets.token_urlsafe(32)


@lru_cache(maxsize=4096)     # a master spells its members' few addresses in every chunk token
def normal_ip(text: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 as IPv4, no zone, compressed IPv6."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def endpoint(ip: str, port: int) -> str:
    """'ip:port' ('[ip]:port' for IPv6), the address normalised."""
    ip = normal_ip(ip)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True, slots=True)
class SwarmKey:
    """A swarm secret stretched with scrypt: every key of the swarm is derived from it."""

    root: bytes = field(repr=False)

    @classmethod
    def stretch(cls, secret: str) -> SwarmKey:
        """The one costly step (scrypt: tens of milliseconds, 32 MiB)."""
        return cls(hashlib.scrypt(secret.encode(), salt=_KDF_SALT, **_SCRYPT))  # type: ignore[arg-type]

    @classmethod
    def from_hex(cls, text: str) -> SwarmKey:
        """A key as `hex()` wrote it (SWARM_KEY_ENV); ConfigError for anything else."""
        text = text.strip()
        if not _KEY_HEX.fullmatch(text):
            raise ConfigError(f"${SWARM_KEY_ENV} is not a stretched swarm key (64 lowercase hex digits)",
                              "unset it: it is set by `lanscatter up` for the roles it starts; give the "
                              "secret itself with --secret-file or LANSCATTER_SECRET")
        return cls(bytes.fromhex(text))

    def hex(self) -> str:
        return self.root.hex()


class Auth:
    """The keys of one swarm secret (or of none: see the module header). A secret given as text is
    stretched here; a `SwarmKey` was stretched once already."""

    def __init__(self, secret: str | SwarmKey | None) -> None:
        if isinstance(secret, str):
            secret = SwarmKey.stretch(secret) if secret else None
        self.secure = secret is not None
        root = secret.root if secret is not None else _INSECURE_ROOT
        self.join_key = _label(root, "join")
        self._chunk_key = _label(root, "chunk")

    def chunk_token(self, chunk: str, requester: str, source: str, expires: int) -> str:
        """The authorisation for `requester` (an IP) to fetch `chunk` from `source` ('ip:port')
        until `expires` (Unix seconds)."""
        requester = normal_ip(requester)
        return f"{expires}|{requester}|{source}|{self._chunk_mac(chunk, requester, source, expires)}"

    def check_chunk(self, chunk: str, token: str | None, *, requester: str, source: str, now: float) -> str | None:
        """Why this request may not have `chunk` (None: it may). `requester` and `source` are what
        the serving socket sees: the remote IP and its own 'ip:port'."""
        if not self.secure:
            return None
        if not token:
            return "the swarm secret is required"
        parts = token.split("|") if len(token) <= _MAX_TOKEN_CHARS else []
        if len(parts) != 4 or not parts[0].isdigit():
            return "malformed chunk token"
        expires, for_requester, for_source, mac = int(parts[0]), parts[1], parts[2], parts[3]
        requester = normal_ip(requester)
        if not hmac.compare_digest(mac, self._chunk_mac(chunk, requester, source, expires)):
            if for_requester != requester:
                return f"the token is for requests from {for_requester:.64}, this one came from {requester}"
            if for_source != source:
                return f"the token is for the source {for_source:.64}, this is {source}"
            return "the token is not for this chunk, or not from this swarm"
        if now > expires + CLOCK_SKEW_S:
            return f"the token expired {now - expires:.0f} s ago (are the hosts' clocks in step?)"
        if expires > now + TOKEN_TTL_S + CLOCK_SKEW_S:
            return f"the token expires {expires - now:.0f} s from now: the master's clock is ahead of this host's"
        return None

    def _chunk_mac(self, chunk: str, requester: str, source: str, expires: int) -> str:
        text = "\0".join(("chunk", chunk, requester, source, str(expires)))
        return hmac.new(self._chunk_key, text.encode(), hashlib.sha256).hexdigest()


def master_clock_offset(clock_ms: int, sent: float, received: float) -> float:
    """Seconds the master's wall clock is ahead of this host's, from its Welcome's `clock_ms` and
    this host's wall clock when it sent its Hello and when the Welcome came (the Welcome was stamped
    between the two); 0.0 from a master that did not say its time."""
    if clock_ms <= 0:
        return 0.0
    return clock_ms / 1000 - (sent + received) / 2


def _label(key: bytes, label: str) -> bytes:
    return hmac.new(key, b"lanscatter " + label.encode(), hashlib.sha256).digest()
