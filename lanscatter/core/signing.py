"""Signed versions: the origin's Ed25519 signature over what a generation contains (pure, no I/O).

Rules:
- What is signed is a small *statement*, a canonical JSON object: the statement format, the
  generation id, a SHA-256 digest of the manifest's canonical content (every directory, path, size,
  mtime, exec bit and chunk hash: the 96-bit generation id is a name, not a commitment), the publish
  time (ms since the epoch), a label (may be empty) and the origin's public key. The statement
  travels as the exact text that was signed, so a relay passes it on byte for byte and nothing is
  ever re-encoded before a check.
- The signature covers a domain prefix plus the statement text, so no other signed blob of this
  key can pass for a statement.
- `verify_version` decodes the statement strictly and bounded (it is input from the network),
  checks that it names the trusted key, checks the signature, and ties the statement to the
  manifest it came with: same generation, same digest. Any mismatch raises `SignatureError`. Whether the key is the right one is the caller's decision
  (a configured key or a pinned one): `verify_version` takes the key to trust, or None to accept
  the key the statement names (first use).
- A tree commit (tree_commit.py: every host shows this generation, or a rollback's kept one
  instead of the current) is signed the same way under its own domain prefix: the generation,
  `instead`, the time the origin signed it and its key (`sign_commit`, `verify_commit`), so a relay
  passes it on but cannot make one up.
- Key generation needs the system's randomness and lives in `signing_keys.py` with the key files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lanscatter.core.errors import SignatureError
from lanscatter.core.manifest import MANIFEST_FORMAT, Manifest
from lanscatter.core.status import PublishedVersion

KEY_PREFIX = "ed25519:"
STATEMENT_FORMAT = 1
MAX_STATEMENT_CHARS = 2048         # a statement is ~250 characters; anything far larger is hostile
MAX_SIGNATURE_CHARS = 128          # base64 of 64 bytes is 88
MAX_LABEL_CHARS = 200
_DOMAIN = b"lanscatter signed version\n"
_COMMIT_DOMAIN = b"lanscatter signed commit\n"
_COMMIT_KEYS = frozenset({"format", "generation", "instead", "signed_ms", "key"})
_STATEMENT_KEYS = frozenset({"format", "generation", "content", "published_ms", "label", "key"})
_GENERATION = re.compile(r"^[0-9a-f]{24}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_KEY_TEXT = re.compile(r"^ed25519:[A-Za-z0-9+/]{43}=$")


@dataclass(frozen=True, slots=True)
class OriginKey:
    """The origin's public key (32 raw bytes); written `ed25519:<base64>` in site trees and options."""

    raw: bytes

    @property
    def text(self) -> str:
        return KEY_PREFIX + base64.b64encode(self.raw).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """A short name for logs (the full text is what is compared)."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)


def parse_origin_key(text: str) -> OriginKey:
    """`ed25519:<base64 of 32 bytes>` -> OriginKey; ValueError saying what is wrong otherwise."""
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise ValueError(f"an origin key starts with {KEY_PREFIX!r} (as `lanscatter keys show` prints it)")
    if not _KEY_TEXT.match(text):
        raise ValueError("an origin key is 'ed25519:' followed by 44 base64 characters (32 bytes)")
    raw = base64.b64decode(text[len(KEY_PREFIX):], validate=True)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValueError(f"not an Ed25519 public key: {exc}") from None
    return OriginKey(raw)


def public_key_of(private: Ed25519PrivateKey) -> OriginKey:
    return OriginKey(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw))


def content_digest(manifest: Manifest) -> str:
    """`sha256:<hex>` of the manifest's canonical content. A decoded manifest is rebuilt sorted
    (`build_manifest`), so the same content gives the same digest whatever order it arrived in;
    JSON with ASCII escapes makes the encoding unambiguous for any path text."""
    # The JSON text of [format, kind, size, dirs, [file, ...]] is hashed in pieces of
    # _DIGEST_PIECE files: the whole text of a million files would be a few hundred megabytes.
    digest = hashlib.sha256()
    head = _json([MANIFEST_FORMAT, manifest.chunking_kind, manifest.chunk_size, list(manifest.dirs)])
    digest.update(head[:-1].encode("ascii") + b",[")
    files = manifest.files
    for start in range(0, len(files), _DIGEST_PIECE):
        piece = _json([[f.path, f.size, f.mtime_ns, int(f.executable), list(f.chunks), list(f.sizes)]
                       for f in files[start:start + _DIGEST_PIECE]])
        digest.update((b"," if start else b"") + piece[1:-1].encode("ascii"))
    digest.update(b"]]")
    return "sha256:" + digest.hexdigest()


_DIGEST_PIECE = 1000


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True, slots=True)
class VersionStatement:
    generation: str
    content: str                    # content_digest of the manifest
    published_ms: int               # when the origin published it (ms since the epoch)
    label: str                      # the operator's name for the version ("" when none)
    key: OriginKey                  # who signed it

    def text(self) -> str:
        """The canonical text that is signed and sent."""
        return json.dumps({"format": STATEMENT_FORMAT, "generation": self.generation, "content": self.content,
                           "published_ms": self.published_ms, "label": self.label, "key": self.key.text},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True, slots=True)
class SignedVersion:
    """A statement as it was signed and its signature (base64); what a manifest travels with."""

    statement: str
    signature: str


def sign_version(manifest: Manifest, private: Ed25519PrivateKey, *, published_ms: int,
                 label: str = "") -> SignedVersion:
    """The origin's signed statement for `manifest`."""
    if len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise ValueError(f"a version label is printable text of at most {MAX_LABEL_CHARS} characters")
    statement = VersionStatement(manifest.generation, content_digest(manifest), published_ms, label,
                                 public_key_of(private)).text()
    signature = private.sign(_DOMAIN + statement.encode("ascii"))
    return SignedVersion(statement, base64.b64encode(signature).decode("ascii"))


def statement_key(signed: SignedVersion) -> OriginKey:
    """The key a statement says signed it (unverified: for choosing which key to check against)."""
    return _decode_statement(signed.statement).key


def verify_version(manifest: Manifest, signed: SignedVersion | None, trusted: OriginKey | None) -> VersionStatement:
    """The statement, once it is shown to be signed by `trusted` (None: by the key it names, for a
    first use that the caller then pins) and to describe exactly `manifest`; else SignatureError."""
    gen = manifest.generation[:12]
    if signed is None or not signed.statement or not signed.signature:
        raise SignatureError(f"generation {gen} is not signed by the origin",
                             "an origin running an older lanscatter does not sign; upgrade it")
    if len(signed.statement) > MAX_STATEMENT_CHARS or len(signed.signature) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"generation {gen} comes with an oversized signed statement")
    claimed = _decode_statement(signed.statement)
    key = trusted if trusted is not None else claimed.key
    if claimed.key != key:
        raise SignatureError(
            f"generation {gen} is signed by key {claimed.key.fingerprint}, not by the origin's key "
            f"{key.fingerprint}", "only the origin's key can publish a version; check --origin-key "
            "(or the key pinned in the state folder) and which master this host follows")
    try:
        raw = base64.b64decode(signed.signature, validate=True)
        key.verifier().verify(raw, _DOMAIN + signed.statement.encode("ascii"))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureError(f"generation {gen}: the signature does not match its statement") from None
    if claimed.generation != manifest.generation:
        raise SignatureError(f"the signed statement names generation {claimed.generation[:12]}, the manifest "
                             f"is generation {gen}")
    if claimed.content != content_digest(manifest):
        raise SignatureError(f"generation {gen}: the manifest's content is not what the origin signed")
    return claimed


def describes(manifest: Manifest, signed: SignedVersion) -> bool:
    """Whether the statement in `signed` names exactly `manifest` (generation and content digest),
    its signature not checked yet: a manifest rebuilt from a delta that it does not name is the
    delta's fault (the whole manifest is fetched instead), not the origin's."""
    try:
        claimed = _decode_statement(signed.statement)
    except SignatureError:
        return False
    return claimed.generation == manifest.generation and claimed.content == content_digest(manifest)


def published_view(signed: SignedVersion | None, generation: str | None) -> PublishedVersion | None:
    """What a status document shows of the version `generation`: its label and publish time (ms),
    from a statement that was verified where it entered this node (None: no statement about it)."""
    if signed is None or not signed.statement or generation is None:
        return None
    try:
        s = _decode_statement(signed.statement)
    except SignatureError:
        return None
    if s.generation != generation:
        return None
    return PublishedVersion(s.generation, s.label, s.published_ms)


def _decode_statement(text: str) -> VersionStatement:
    """Strict decoding of a statement's text (shape, types, bounds); SignatureError otherwise."""
    if not isinstance(text, str) or len(text) > MAX_STATEMENT_CHARS or not text.isascii():
        raise SignatureError("the signed statement is not short ASCII text")
    try:
        data = json.loads(text)
    except ValueError:
        raise SignatureError("the signed statement is not JSON") from None
    if not isinstance(data, dict) or set(data) != _STATEMENT_KEYS:
        raise SignatureError("the signed statement does not have the fields of a statement")
    fmt, gen, content, published, label, key = (data[k] for k in (
        "format", "generation", "content", "published_ms", "label", "key"))
    if fmt != STATEMENT_FORMAT or isinstance(fmt, bool):
        raise SignatureError(f"unsupported signed statement format {fmt!r:.20}",
                             "install the same lanscatter version as the origin")
    if not (isinstance(gen, str) and _GENERATION.match(gen) and isinstance(content, str) and _DIGEST.match(content)
            and isinstance(published, int) and not isinstance(published, bool) and 0 <= published < 2**53
            and isinstance(label, str) and len(label) <= MAX_LABEL_CHARS and label.isprintable()
            and isinstance(key, str)):
        raise SignatureError("the signed statement has a malformed field")
    try:
        origin = parse_origin_key(key)
    except ValueError as exc:
        raise SignatureError(f"the signed statement names a malformed key: {exc}") from None
    return VersionStatement(gen, content, published, label, origin)


@dataclass(frozen=True, slots=True)
class CommitStatement:
    """The origin's word that every host shows `generation` (instead of `instead`, for a rollback)."""

    generation: str
    instead: str                    # "" unless a rollback
    signed_ms: int                  # when the origin signed it (ms since the epoch; only grows)
    key: OriginKey

    def text(self) -> str:
        return json.dumps({"format": STATEMENT_FORMAT, "generation": self.generation, "instead": self.instead,
                           "signed_ms": self.signed_ms, "key": self.key.text},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sign_commit(private: Ed25519PrivateKey, generation: str, instead: str, *, signed_ms: int) -> SignedVersion:
    """The origin's signed statement of a tree commit (a statement and its signature, as a version's)."""
    statement = CommitStatement(generation, instead, signed_ms, public_key_of(private)).text()
    return SignedVersion(statement, base64.b64encode(private.sign(_COMMIT_DOMAIN + statement.encode("ascii"))).decode())


def verify_commit(generation: str, instead: str, signed: SignedVersion, trusted: OriginKey) -> CommitStatement:
    """The statement of a commit of `generation` (instead of `instead`), once it is shown to be
    signed by `trusted` and to say exactly that; else SignatureError."""
    gen = generation[:12]
    if not signed.statement or not signed.signature:
        raise SignatureError(f"the commit of generation {gen} is not signed by the origin",
                             "an origin running an older lanscatter does not sign commits; upgrade it")
    if len(signed.statement) > MAX_STATEMENT_CHARS or len(signed.signature) > MAX_SIGNATURE_CHARS \
            or not signed.statement.isascii():
        raise SignatureError(f"the commit of generation {gen} comes with an oversized signed statement")
    try:
        data = json.loads(signed.statement)
    except ValueError:
        raise SignatureError("the signed commit is not JSON") from None
    if not isinstance(data, dict) or set(data) != _COMMIT_KEYS:
        raise SignatureError("the signed commit does not have the fields of a commit")
    fmt, g, i, at, key = (data[k] for k in ("format", "generation", "instead", "signed_ms", "key"))
    if fmt != STATEMENT_FORMAT or isinstance(fmt, bool):
        raise SignatureError(f"unsupported signed commit format {fmt!r:.20}",
                             "install the same lanscatter version as the origin")
    if not (isinstance(g, str) and _GENERATION.match(g) and isinstance(i, str) and (not i or _GENERATION.match(i))
            and isinstance(at, int) and not isinstance(at, bool) and 0 <= at < 2**53 and isinstance(key, str)):
        raise SignatureError("the signed commit has a malformed field")
    try:
        claimed = parse_origin_key(key)
    except ValueError as exc:
        raise SignatureError(f"the signed commit names a malformed key: {exc}") from None
    if claimed != trusted:
        raise SignatureError(f"the commit of generation {gen} is signed by key {claimed.fingerprint}, not by "
                             f"the origin's key {trusted.fingerprint}")
    try:
        raw = base64.b64decode(signed.signature, validate=True)
        trusted.verifier().verify(raw, _COMMIT_DOMAIN + signed.statement.encode("ascii"))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureError(f"the commit of generation {gen}: the signature does not match its statement") from None
    if (g, i) != (generation, instead):
        raise SignatureError(f"the signed commit is of generation {g[:12]} instead of {i[:12] or '-'}, the "
                             f"message of generation {gen} instead of {instead[:12] or '-'}")
    return CommitStatement(g, i, at, claimed)
