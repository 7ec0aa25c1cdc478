"""Proof of the swarm secret; the secret itself never crosses the wire.

Joining: the master sends a random nonce, the peer answers HMAC(secret, "join:" + nonce).
Fetching a chunk: the request carries HMAC(secret, "chunk:" + hash); only holders of the secret can
compute it, and it names nothing but content the requester already knows the hash of.
With no secret configured, both are empty strings and every request is allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

TOKEN_HEADER = "X-Lanscatter-Token"


class Auth:
    def __init__(self, secret: str | None) -> None:
        self._key = secret.encode() if secret else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def _mac(self, text: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def new_nonce() -> str:
        return _secrets.token_hex(16)

    def join_proof(self, nonce: str) -> str:
        return self._mac("join:" + nonce) if self._key else ""

    def check_join(self, nonce: str, proof: str) -> bool:
        return not self._key or hmac.compare_digest(self._mac("join:" + nonce), proof)

    def chunk_token(self, chunk: str) -> str:
        return self._mac("chunk:" + chunk) if self._key else ""

    def check_chunk(self, chunk: str, token: str | None) -> bool:
        return not self._key or (token is not None and hmac.compare_digest(self._mac("chunk:" + chunk), token))
