"""The publish request: only a holder of the secret, once per master-issued nonce, well formed."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from lanscatter.core.auth import Auth
from lanscatter.core.errors import AuthError, RemoteProtocolError
from lanscatter.core.publish_request import (
    MAX_NONCES,
    NONCE_TTL_S,
    NonceBook,
    PublishRequest,
    RollbackRequest,
    open_request,
    open_rollback,
    publish_key,
    rollback_key,
    seal_request,
    seal_rollback,
)

RIGHT = Auth("the right secret of enough length")
WRONG = Auth("some other secret of enough length")
NONCE = "n" * 32


def _book() -> NonceBook:
    book = NonceBook()
    book.issue(NONCE, now=100.0)
    return book


def test_a_sealed_request_opens_once() -> None:
    book = _book()
    body, mac = seal_request(RIGHT, PublishRequest(NONCE, "build 7", False))
    assert open_request(RIGHT, body, mac, book, now=101.0) == PublishRequest(NONCE, "build 7", False)
    with pytest.raises(AuthError, match="replay"):
        open_request(RIGHT, body, mac, book, now=102.0)


@pytest.mark.parametrize("mac", [None, "", "00" * 32, "not hex at all \u00e9"])
def test_a_request_without_the_secret_is_refused(mac: str | None) -> None:
    body, _ = seal_request(WRONG, PublishRequest(NONCE, None, True))
    with pytest.raises(AuthError, match="secret"):
        open_request(RIGHT, body, mac, _book(), now=101.0)


def test_a_request_sealed_with_another_secret_is_refused() -> None:
    body, mac = seal_request(WRONG, PublishRequest(NONCE, None, True))
    with pytest.raises(AuthError):
        open_request(RIGHT, body, mac, _book(), now=101.0)


def test_an_expired_or_unknown_nonce_is_refused() -> None:
    body, mac = seal_request(RIGHT, PublishRequest(NONCE, None, False))
    with pytest.raises(AuthError, match="nonce"):
        open_request(RIGHT, body, mac, _book(), now=100.0 + NONCE_TTL_S + 1)
    with pytest.raises(AuthError, match="nonce"):
        open_request(RIGHT, body, mac, NonceBook(), now=101.0)


def test_the_nonce_book_is_bounded() -> None:
    book = NonceBook()
    for i in range(MAX_NONCES + 10):
        book.issue(f"{i:032d}", now=0.0)
    assert not book.take(f"{0:032d}", now=1.0)
    assert book.take(f"{MAX_NONCES + 9:032d}", now=1.0)


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"nonce": "' + NONCE.encode() + b'"}',
    b'{"nonce": 5, "label": null, "allow_shrink": false}',
    b'{"nonce": "' + NONCE.encode() + b'", "label": "line\\nbreak", "allow_shrink": false}',
    b'{"nonce": "' + NONCE.encode() + b'", "label": null, "allow_shrink": "yes"}',
    b"x" * 5000,
])
def test_a_malformed_request_with_the_secret_is_a_protocol_error(body: bytes) -> None:
    mac = hmac.new(publish_key(RIGHT), body, hashlib.sha256).hexdigest()
    with pytest.raises(RemoteProtocolError):
        open_request(RIGHT, body, mac, _book(), now=101.0)


def test_the_publish_key_is_not_the_join_key() -> None:
    assert publish_key(RIGHT) != RIGHT.join_key


def test_a_rollback_request_opens_once_and_only_with_its_own_key() -> None:
    book = _book()
    body, mac = seal_rollback(RIGHT, RollbackRequest(NONCE, "build 6"))
    # A publish MAC over the same body does not pass for a rollback, nor the other way round.
    with pytest.raises(AuthError):
        open_rollback(RIGHT, body, hmac.new(publish_key(RIGHT), body, hashlib.sha256).hexdigest(), book, now=101.0)
    with pytest.raises(AuthError):
        open_rollback(WRONG, body, mac, book, now=101.0)
    assert open_rollback(RIGHT, body, mac, book, now=101.0) == RollbackRequest(NONCE, "build 6")
    with pytest.raises(AuthError, match="replay"):
        open_rollback(RIGHT, body, mac, book, now=102.0)
    book.issue(NONCE, now=200.0)
    body, mac = seal_rollback(RIGHT, RollbackRequest(NONCE, None))
    assert open_rollback(RIGHT, body, mac, book, now=201.0).to is None


@pytest.mark.parametrize("body", [b'{"nonce":"' + NONCE.encode() + b'","to":7}', b'{"nonce":"short","to":null}',
                                  b'{"nonce":"' + NONCE.encode() + b'"}', b"[]", b"{nope",
                                  b'{"nonce":"' + NONCE.encode() + b'","to":"a\\nb"}',
                                  b'{"nonce":"' + NONCE.encode() + b'","to":""}',
                                  b'{"nonce":"' + NONCE.encode() + b'","to":"' + b"x" * 201 + b'"}'])
def test_a_malformed_rollback_from_a_holder_of_the_secret_is_a_protocol_error_and_uses_no_nonce(body: bytes) -> None:
    book = _book()
    with pytest.raises(RemoteProtocolError):
        open_rollback(RIGHT, body, hmac.new(rollback_key(RIGHT), body, hashlib.sha256).hexdigest(), book, now=101.0)
    assert book.take(NONCE, now=101.0)          # still good: nothing was taken
