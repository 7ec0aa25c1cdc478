"""The join handshake and sealed frames, both sides driven in memory (no event loop), and the
chunk tokens and secret rules of auth.py."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest

from lanscatter.core import protocol as p
from lanscatter.core.auth import (
    CLOCK_SKEW_S,
    TOKEN_TTL_S,
    Auth,
    check_secret,
    master_clock_offset,
    new_secret,
)
from lanscatter.core.errors import (
    AuthError,
    ConfigError,
    LocalProtocolError,
    RemoteProtocolError,
    VersionMismatch,
)
from lanscatter.core.handshake import (
    Accepted,
    Channel,
    MasterHandshake,
    PeerHandshake,
    Refused,
    State,
    seal_hello,
)

SECRET = "correct horse battery staple"
KEY = Auth(SECRET)
PEER_ADDR = "10.0.0.5"


def _hello(addr: str = PEER_ADDR, **kw: int) -> p.Hello:
    fields = {"protocol": p.PROTOCOL_VERSION, "min_protocol": p.MIN_PROTOCOL_VERSION, **kw}
    return p.Hello("p1", fields["protocol"], fields["min_protocol"], "t", secrets.token_hex(16), addr, 10565, 2, 2)


def _pair(master_auth: Auth = KEY, peer_auth: Auth = KEY, *, seen_from: str = PEER_ADDR, allow_nat: bool = False,
          hello: p.Hello | None = None) -> tuple[MasterHandshake, PeerHandshake, Accepted | Refused]:
    master = MasterHandshake(master_auth, secrets.token_hex(16), software="t")
    peer = PeerHandshake(peer_auth, hello or _hello())
    outcome = master.receive_hello(peer.receive_challenge(master.challenge()), seen_from=seen_from,
                                   allow_nat=allow_nat, them="p1")
    return master, peer, outcome


def _joined() -> tuple[Channel, Channel]:
    master, peer, outcome = _pair()
    assert isinstance(outcome, Accepted)
    frame, m_channel = master.welcome("p1")
    assert peer.receive_welcome(frame) == p.Welcome("p1", p.PROTOCOL_VERSION)
    assert peer.channel is not None and master.state == peer.state == State.JOINED
    return m_channel, peer.channel


def test_both_sides_prove_the_secret_and_frames_flow_both_ways() -> None:
    m, pc = _joined()
    for i in range(3):
        assert pc.open(m.seal(b"to peer %d" % i), "m") == b"to peer %d" % i
        assert m.open(pc.seal(b"to master %d" % i), "p") == b"to master %d" % i


def test_a_wrong_secret_is_refused_and_the_peer_says_so() -> None:
    _, peer, outcome = _pair(peer_auth=Auth("a different secret, quite long"))
    assert isinstance(outcome, Refused) and outcome.error.code == "auth"
    with pytest.raises(AuthError, match="refused this peer: wrong or missing swarm secret") as info:
        peer.receive_welcome(outcome.frame)
    assert info.value.hint and "secret new" in info.value.hint


def test_no_secret_and_a_secret_never_meet() -> None:
    assert isinstance(_pair(master_auth=Auth(None))[2], Refused)      # no downgrade either way
    assert isinstance(_pair(peer_auth=Auth(None))[2], Refused)


def test_a_master_that_does_not_know_the_secret_is_refused() -> None:
    impostor = MasterHandshake(Auth("the impostor's guess at it"), secrets.token_hex(16), software="t")
    peer = PeerHandshake(KEY, _hello())
    hello_frame = peer.receive_challenge(impostor.challenge())
    # It cannot check the Hello; whatever it seals as a Welcome fails the peer's check ...
    forged = MasterHandshake(Auth("the impostor's guess at it"), "x" * 32, software="t")
    forged.challenge()
    forged_hello = seal_hello(Auth("the impostor's guess at it"), "x" * 32, p.encode(_hello()).encode())
    assert isinstance(forged.receive_hello(forged_hello, seen_from=PEER_ADDR, allow_nat=False, them="p"), Accepted)
    frame, _ = forged.welcome("p1")
    with pytest.raises(AuthError, match="did not prove the swarm secret"):
        peer.receive_welcome(frame)
    assert hello_frame and peer.state == State.FAILED
    # ... and so does anything it says unsealed.
    peer2 = PeerHandshake(KEY, _hello())
    peer2.receive_challenge(MasterHandshake(Auth(None), secrets.token_hex(16), software="t").challenge())
    with pytest.raises(AuthError, match="'manifest' before proving the swarm secret"):
        peer2.receive_welcome(p.encode(p.ManifestMsg({"format": 1, "files": []})))


def test_a_hello_for_another_challenge_is_refused() -> None:
    """A Hello recorded (or relayed) from another connection proves nothing here."""
    m1 = MasterHandshake(KEY, secrets.token_hex(16), software="t")
    recorded = PeerHandshake(KEY, _hello()).receive_challenge(m1.challenge())
    m2 = MasterHandshake(KEY, secrets.token_hex(16), software="t")
    m2.challenge()
    outcome = m2.receive_hello(recorded, seen_from=PEER_ADDR, allow_nat=False, them="p")
    assert isinstance(outcome, Refused) and outcome.error.code == "auth"


def test_the_address_said_must_be_the_address_seen() -> None:
    _, peer, outcome = _pair(seen_from="10.0.0.66")
    assert isinstance(outcome, Refused) and outcome.error.code == "address"
    assert "10.0.0.5" in outcome.error.message and "10.0.0.66" in outcome.error.message
    with pytest.raises(AuthError, match="10.0.0.66") as info:
        peer.receive_welcome(outcome.frame)
    assert info.value.hint and "--allow-nat" in info.value.hint
    assert isinstance(_pair(seen_from="10.0.0.66", allow_nat=True)[2], Accepted)
    assert isinstance(_pair(seen_from="::ffff:10.0.0.5")[2], Accepted)      # one address, two spellings


def test_versions_without_overlap_say_which_side_to_upgrade() -> None:
    old_master = p.encode(p.Challenge("n" * 32, 4, 1, "old"))
    with pytest.raises(VersionMismatch, match="upgrade the master"):
        PeerHandshake(KEY, _hello()).receive_challenge(old_master)
    _, peer, outcome = _pair(hello=_hello(protocol=99, min_protocol=99))
    assert isinstance(outcome, Refused) and outcome.error.code == "version"
    assert "upgrade this node" in outcome.error.message
    with pytest.raises(VersionMismatch):
        peer.receive_welcome(outcome.frame)


@pytest.mark.parametrize("attack", ["forged", "replayed", "reordered", "reflected", "truncated", "dropped"])
def test_frames_after_login_cannot_be_forged_replayed_or_reordered(attack: str) -> None:
    m, pc = _joined()
    one, two = m.seal(b'{"t":"cancel","transfer":1}'), m.seal(b'{"t":"cancel","transfer":2}')
    if attack == "forged":
        frames = [bytes(32) + b'{"t":"cancel","transfer":1}']
    elif attack == "replayed":
        assert pc.open(one, "m")
        frames = [one]
    elif attack == "reordered":
        frames = [two]
    elif attack == "reflected":          # the peer's own frame sent back to it
        frames = [pc.seal(b'{"t":"cancel","transfer":1}')]
    elif attack == "truncated":
        frames = [one[:20]]
    else:
        frames = [two]                   # `one` never arrived
    with pytest.raises(RemoteProtocolError, match="fails its MAC"):
        for frame in frames:
            pc.open(frame, "m")


def test_calls_out_of_order_are_our_bug() -> None:
    master = MasterHandshake(KEY, secrets.token_hex(16), software="t")
    with pytest.raises(LocalProtocolError):
        master.welcome("p")
    peer = PeerHandshake(KEY, _hello())
    with pytest.raises(LocalProtocolError):
        peer.receive_welcome(b"")


def test_malformed_handshake_frames_are_the_remote_side_breaking_the_protocol() -> None:
    master = MasterHandshake(KEY, secrets.token_hex(16), software="t")
    master.challenge()
    with pytest.raises(RemoteProtocolError, match="sealed hello"):
        master.receive_hello('{"t":"hello"}', seen_from=PEER_ADDR, allow_nat=False, them="p")
    with pytest.raises(RemoteProtocolError, match="nonce"):
        PeerHandshake(KEY, _hello()).receive_challenge(p.encode(p.Challenge("short", 5, 5, "x")))


# ---- chunk tokens ------------------------------------------------------------------------------
CHUNK, OTHER = "a" * 64, "b" * 64
NOW = 1_800_000_000.0


def _token(**kw: object) -> str:
    args: dict[str, object] = {"chunk": CHUNK, "requester": "10.0.0.5", "source": "10.0.0.7:10565",
                               "expires": int(NOW) + TOKEN_TTL_S} | kw
    return KEY.chunk_token(**args)  # type: ignore[arg-type]


def _check(token: str | None, chunk: str = CHUNK, requester: str = "10.0.0.5", source: str = "10.0.0.7:10565",
           now: float = NOW) -> str | None:
    return KEY.check_chunk(chunk, token, requester=requester, source=source, now=now)


def test_a_token_is_good_for_its_chunk_requester_source_and_time_only() -> None:
    assert _check(_token()) is None
    assert _check(_token(), requester="::ffff:10.0.0.5") is None
    assert "10.0.0.9" in (_check(_token(), requester="10.0.0.9") or "")
    assert "10.0.0.8:10565" in (_check(_token(), source="10.0.0.8:10565") or "")
    assert "not for this chunk" in (_check(_token(), chunk=OTHER) or "")
    assert "expired" in (_check(_token(expires=int(NOW) - CLOCK_SKEW_S - 1)) or "")
    assert _check(_token(expires=int(NOW) - CLOCK_SKEW_S + 1)) is None          # the skew margin
    assert "clock is ahead" in (_check(_token(expires=int(NOW) + 3600)) or "")
    assert "not from this swarm" in (_check(Auth("another swarm's secret!!").chunk_token(
        CHUNK, "10.0.0.5", "10.0.0.7:10565", int(NOW) + 60)) or "")
    assert "required" in (_check(None) or "")
    for bad in ("", "x", "1|2|3", "a|b|c|d", "9" * 300):
        assert _check(bad) is not None
    # a token whose clear fields were edited to fit another requester still fails its MAC
    expires, _, source, mac = _token().split("|")
    assert _check(f"{expires}|10.0.0.9|{source}|{mac}", requester="10.0.0.9") is not None


def test_a_source_checks_a_token_by_its_masters_clock_as_the_welcome_said_it() -> None:
    master, peer, outcome = _pair()
    assert isinstance(outcome, Accepted)
    hours = 7 * 3600                                     # the master's clock is 7 h ahead of this host's
    frame, _ = master.welcome("p1", int((NOW + hours) * 1000))
    sent = NOW - 0.02                                    # a 40 ms round trip around the master's stamp
    offset = master_clock_offset(peer.receive_welcome(frame).clock_ms, sent, NOW + 0.02)
    assert abs(offset - hours) < 0.001
    token = _token(expires=int(NOW + hours) + TOKEN_TTL_S)   # made by that master's clock
    assert "clock is ahead" in (_check(token) or "")     # by this host's own clock: refused
    assert _check(token, now=NOW + offset) is None
    assert master_clock_offset(0, sent, NOW) == 0.0      # a master that does not say: our own clock


def test_without_a_secret_every_request_passes() -> None:
    assert Auth(None).check_chunk(CHUNK, None, requester="1.2.3.4", source="x", now=NOW) is None


def test_weak_secrets_are_refused_and_new_ones_are_strong() -> None:
    for weak in ("", "s3cret", "fifteen chars!!"):
        with pytest.raises(ConfigError, match="at least 16") as info:
            check_secret(weak)
        assert info.value.hint and "secret new" in info.value.hint
    made = {new_secret() for _ in range(5)}
    assert len(made) == 5
    for secret in made:
        check_secret(secret)
        assert len(secret) >= 40 and secret.isprintable() and " " not in secret


def test_a_frames_mac_is_hmac_sha256_of_direction_sequence_and_body() -> None:
    """The wire format (docs/security.md): a frame is HMAC-SHA256(key, direction | sequence (8 bytes,
    big-endian) | body) then the body; fed in pieces or whole, the same bytes."""
    key = secrets.token_bytes(32)
    sender, receiver = Channel(key, sends=b"P", receives=b"M"), Channel(key, sends=b"M", receives=b"P")
    for seq, body in enumerate([b"first", b"", b"x" * 70_000]):
        frame = sender.seal_pieces([body[:3], body[3:]])
        assert frame[:32] == hmac.new(key, b"P" + seq.to_bytes(8, "big") + body, hashlib.sha256).digest()
        assert frame[32:] == body and receiver.open(frame, "them") == body
