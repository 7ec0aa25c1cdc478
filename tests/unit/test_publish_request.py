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
    open_request,
    publish_key,
    seal_request,
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
