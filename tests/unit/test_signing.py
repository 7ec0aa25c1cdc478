"""Signed versions: the content digest is canonical, a statement verifies only for the manifest it
was made for and only under the key it names, any change to anything signed is refused, and a host
without a configured key pins the first one and refuses every other."""

from __future__ import annotations

import ast
import base64
import dataclasses
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import lanscatter.core.signing as signing_module
from lanscatter.core.errors import ConfigError, SignatureError
from lanscatter.core.manifest import FileEntry, Manifest, build_manifest, manifest_from_dict
from lanscatter.core.signing import (
    OriginKey,
    SignedVersion,
    content_digest,
    parse_origin_key,
    public_key_of,
    sign_commit,
    sign_version,
    verify_commit,
    verify_version,
)
from lanscatter.disk.signing_keys import NEWEST_FILE, OriginTrust

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ORIGIN = public_key_of(KEY)


def _manifest(**change: object) -> Manifest:
    files = [FileEntry("bin/run.sh", 10, 1_600_000_000_000_000_000, True, (H1,), (10,)),
             FileEntry("data/a.bin", 40, 1_600_000_000_000_000_001, False, (H2, H3), (32, 8))]
    entry = dataclasses.replace(files[0], **change) if change else files[0]
    return build_manifest(32, [entry, files[1]], ["empty"])


def _signed(m: Manifest | None = None, key: Ed25519PrivateKey = KEY) -> SignedVersion:
    return sign_version(m or _manifest(), key, published_ms=1_765_000_000_000, label="build 7")


# ---- the digest --------------------------------------------------------------------------------
def test_the_digest_is_of_the_content_not_its_order_and_full_strength() -> None:
    m = _manifest()
    wire = m.to_dict()
    wire["files"].reverse()
    wire["dirs"].reverse()
    again = manifest_from_dict(wire)
    assert content_digest(again) == content_digest(m)
    assert content_digest(m).startswith("sha256:") and len(content_digest(m)) == len("sha256:") + 64


@pytest.mark.parametrize("change", [
    {"path": "bin/run2.sh"}, {"size": 11}, {"mtime_ns": 1}, {"executable": False}, {"chunks": (H3,)},
    {"sizes": (9,)},
])
def test_any_change_to_a_file_changes_the_digest(change: dict[str, object]) -> None:
    assert content_digest(_manifest(**change)) != content_digest(_manifest())


def test_directories_and_chunk_size_are_covered() -> None:
    m = _manifest()
    assert content_digest(build_manifest(32, m.files, [])) != content_digest(m)
    assert content_digest(Manifest(64, m.files, m.dirs)) != content_digest(m)
    assert content_digest(Manifest(32, m.files, m.dirs, "cdc")) != content_digest(m)


def test_paths_that_differ_only_in_escaping_stay_apart() -> None:
    a = build_manifest(32, [FileEntry('a",1,2', 0, 0, False, (), ())], [])
    b = build_manifest(32, [FileEntry("a", 0, 0, False, (), ())], ["1"])
    assert content_digest(a) != content_digest(b)


# ---- signing and checking ------------------------------------------------------------------------
def test_a_signed_version_verifies_under_the_origins_key() -> None:
    m = _manifest()
    statement = verify_version(m, _signed(m), ORIGIN)
    assert statement.generation == m.generation and statement.content == content_digest(m)
    assert statement.published_ms == 1_765_000_000_000 and statement.label == "build 7"
    assert statement.key == ORIGIN
    assert verify_version(m, _signed(m), None).key == ORIGIN      # first use: the key it names


@pytest.mark.parametrize("signed", [None, SignedVersion("", ""), SignedVersion(_signed().statement, "")])
def test_unsigned_is_refused(signed: SignedVersion | None) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_version(_manifest(), signed, ORIGIN)


def test_another_key_is_refused_even_when_its_signature_is_good() -> None:
    with pytest.raises(SignatureError, match="not by the origin's key"):
        verify_version(_manifest(), _signed(key=OTHER), ORIGIN)


def test_a_statement_for_other_content_is_refused() -> None:
    pwned = _manifest(size=11, chunks=(H3,))
    with pytest.raises(SignatureError):
        verify_version(pwned, _signed(_manifest()), ORIGIN)
    empty = build_manifest(32, [], [])
    with pytest.raises(SignatureError):
        verify_version(empty, _signed(_manifest()), ORIGIN)


def test_same_generation_id_other_content_is_refused() -> None:
    """The 96-bit generation id is a name: a manifest claiming the signed one's id must still match
    the full digest."""
    signed = _signed()
    forged = dataclasses.replace(_manifest(executable=False), generation=_manifest().generation)
    with pytest.raises(SignatureError, match="not what the origin signed"):
        verify_version(forged, signed, ORIGIN)


@pytest.mark.parametrize("field,value", [
    ("format", 2), ("format", True), ("generation", "0" * 24), ("content", "sha256:" + "0" * 64),
    ("published_ms", 1), ("published_ms", -1), ("published_ms", 1.5), ("label", "build 8"), ("label", 7),
    ("key", public_key_of(OTHER).text), ("extra", 1),
])
def test_any_changed_statement_field_is_refused(field: str, value: object) -> None:
    signed = _signed()
    data = json.loads(signed.statement)
    data[field] = value
    tampered = SignedVersion(json.dumps(data, sort_keys=True, separators=(",", ":")), signed.signature)
    with pytest.raises(SignatureError):
        verify_version(_manifest(), tampered, ORIGIN)


def test_a_changed_or_missing_field_and_a_changed_signature_are_refused() -> None:
    signed = _signed()
    data = json.loads(signed.statement)
    del data["label"]
    with pytest.raises(SignatureError):
        verify_version(_manifest(), SignedVersion(json.dumps(data), signed.signature), ORIGIN)
    raw = bytearray(base64.b64decode(signed.signature))
    raw[0] ^= 1
    for sig in (base64.b64encode(bytes(raw)).decode(), "not base64!", signed.signature[:-4]):
        with pytest.raises(SignatureError):
            verify_version(_manifest(), SignedVersion(signed.statement, sig), ORIGIN)
    spaced = signed.statement.replace(",", ", ")        # same JSON, other bytes: not what was signed
    with pytest.raises(SignatureError):
        verify_version(_manifest(), SignedVersion(spaced, signed.signature), ORIGIN)


@pytest.mark.parametrize("statement", ["x" * 5000, "not json", "[]", "é" * 10, json.dumps({"format": 1})])
def test_malformed_statements_are_refused(statement: str) -> None:
    with pytest.raises(SignatureError):
        verify_version(_manifest(), SignedVersion(statement, _signed().signature), ORIGIN)


def test_a_label_is_printable_and_bounded() -> None:
    with pytest.raises(ValueError):
        sign_version(_manifest(), KEY, published_ms=0, label="a\nb")
    with pytest.raises(ValueError):
        sign_version(_manifest(), KEY, published_ms=0, label="x" * 201)


# ---- keys ----------------------------------------------------------------------------------------
def test_origin_keys_round_trip_and_bad_ones_say_why() -> None:
    assert parse_origin_key(f"  {ORIGIN.text}\n") == ORIGIN
    assert ORIGIN.text.startswith("ed25519:") and len(ORIGIN.text) == 52
    for bad, why in [("rsa:AAAA", "starts with"), ("ed25519:abc", "44 base64"),
                     ("ed25519:" + "!" * 43 + "=", "44 base64")]:
        with pytest.raises(ValueError, match=why):
            parse_origin_key(bad)


def test_trust_on_first_use_pins_the_first_key_and_refuses_another(tmp_path: Path) -> None:
    pin = tmp_path / "state" / "origin-key.pin"
    trust = OriginTrust(None, pin, pin.with_name(NEWEST_FILE))
    m = _manifest()
    trust.check(m, _signed(m))
    assert parse_origin_key(pin.read_text()) == ORIGIN
    with pytest.raises(SignatureError, match="not by the origin's key"):
        OriginTrust(None, pin, pin.with_name(NEWEST_FILE)).check(m, _signed(m, OTHER))
    assert parse_origin_key(pin.read_text()) == ORIGIN          # the pin did not move
    # A configured key wins over the pin (the operator said which key is the origin's).
    configured = OriginTrust(public_key_of(OTHER), pin, pin.with_name(NEWEST_FILE))
    configured.check(m, _signed(m, OTHER))
    with pytest.raises(SignatureError):
        configured.check(m, _signed(m))


def test_a_refused_first_version_pins_nothing(tmp_path: Path) -> None:
    pin = tmp_path / "origin-key.pin"
    with pytest.raises(SignatureError):
        OriginTrust(None, pin, pin.with_name(NEWEST_FILE)).check(build_manifest(32, [], []), _signed())
    assert not pin.exists()


def test_a_damaged_pin_is_a_config_error(tmp_path: Path) -> None:
    pin = tmp_path / "origin-key.pin"
    pin.write_text("garbage\n")
    with pytest.raises(ConfigError, match="origin-key.pin"):
        OriginTrust(None, pin, pin.with_name(NEWEST_FILE)).check(_manifest(), _signed())


def test_the_signing_core_does_no_io() -> None:
    tree = ast.parse(Path(signing_module.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"asyncio", "aiohttp", "os", "socket", "time", "pathlib", "random"}


def test_an_origin_key_is_a_value() -> None:
    assert OriginKey(ORIGIN.raw) == ORIGIN and len(ORIGIN.fingerprint) == 16


def test_a_version_published_before_the_newest_taken_is_refused(tmp_path: Path) -> None:
    """A relay or intruder replaying an older version the origin really signed rolls no host back,
    across a restart too (the newest is kept in the state folder); the same version again, the
    host's own saved one (`held`), and a later one pass."""
    pin, newest = tmp_path / "origin-key.pin", tmp_path / NEWEST_FILE
    old, new = _manifest(), build_manifest(32, [], [])

    def signed(m: Manifest, ms: int) -> SignedVersion:
        return sign_version(m, KEY, published_ms=ms)

    OriginTrust(None, pin, newest).check(new, signed(new, 2_000))
    assert newest.read_text().split() == ["2000", new.generation]
    trust = OriginTrust(None, pin, newest)                    # a restart
    with pytest.raises(SignatureError, match="published before generation") as refused:
        trust.check(old, signed(old, 1_999))
    assert refused.value.hint is not None and "publish it again" in refused.value.hint
    with pytest.raises(SignatureError, match="published before"):
        trust.check(old, signed(old, 2_000))                  # the same time, other content
    assert trust.check(new, signed(new, 2_000)).generation == new.generation   # again: a reconnect
    assert trust.check(old, signed(old, 1_000), held=True).published_ms == 1_000
    assert newest.read_text().split() == ["2000", new.generation]
    trust.check(old, signed(old, 3_000))                      # published anew: taken
    assert newest.read_text().split() == ["3000", old.generation]


def test_a_damaged_newest_version_file_is_a_config_error(tmp_path: Path) -> None:
    newest = tmp_path / NEWEST_FILE
    for text in ("garbage\n", "12x abc\n", "1 2 3\n"):
        newest.write_text(text)
        with pytest.raises(ConfigError, match=NEWEST_FILE):
            OriginTrust(None, tmp_path / "origin-key.pin", newest).check(_manifest(), _signed())


def test_a_signed_commit_is_checked_strictly() -> None:
    g1, g2 = "a" * 24, "b" * 24
    signed = sign_commit(KEY, g1, g2, signed_ms=5)
    statement = verify_commit(g1, g2, signed, ORIGIN)
    assert (statement.generation, statement.instead, statement.signed_ms) == (g1, g2, 5)
    data = json.loads(signed.statement)
    for change, why in [({"signed_ms": -1}, "malformed field"), ({"signed_ms": True}, "malformed field"),
                        ({"instead": "x"}, "malformed field"), ({"format": 2}, "unsupported"),
                        ({"extra": 1}, "fields of a commit"), ({"key": "ed25519:abc"}, "malformed key")]:
        bad = SignedVersion(json.dumps(data | change), signed.signature)
        with pytest.raises(SignatureError, match=why):
            verify_commit(g1, g2, bad, ORIGIN)
    with pytest.raises(SignatureError, match="oversized"):
        verify_commit(g1, g2, SignedVersion(signed.statement + " " * 3000, signed.signature), ORIGIN)
    with pytest.raises(SignatureError, match="not JSON"):
        verify_commit(g1, g2, SignedVersion("{", signed.signature), ORIGIN)
    # A version's signature over the same text is no commit's (their domains differ).
    as_version = SignedVersion(signed.statement, base64.b64encode(
        KEY.sign(b"lanscatter signed version\n" + signed.statement.encode())).decode())
    with pytest.raises(SignatureError, match="does not match"):
        verify_commit(g1, g2, as_version, ORIGIN)


def test_a_commit_before_any_version_is_refused(tmp_path: Path) -> None:
    signed = sign_commit(KEY, "a" * 24, "", signed_ms=5)
    with pytest.raises(SignatureError, match="before any version"):
        OriginTrust(None, tmp_path / "origin-key.pin", tmp_path / NEWEST_FILE).check_commit("a" * 24, "", signed)
