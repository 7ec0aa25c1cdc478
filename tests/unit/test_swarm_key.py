"""The swarm secret stretched once (auth.SwarmKey): the same keys as stretching it in each Auth,
and what a supervisor hands its roles (topology.roles.role_env) holds no secret."""

from __future__ import annotations

import pytest

from lanscatter.core.auth import SWARM_KEY_ENV, Auth, SwarmKey
from lanscatter.core.errors import ConfigError
from lanscatter.topology.roles import role_env

SECRET = "a-secret-long-enough-for-a-swarm"


def test_a_stretched_key_gives_the_keys_of_its_secret() -> None:
    key = SwarmKey.stretch(SECRET)
    by_text, by_key, by_hex = Auth(SECRET), Auth(key), Auth(SwarmKey.from_hex(key.hex()))
    assert by_text.join_key == by_key.join_key == by_hex.join_key
    token = by_key.chunk_token("ab" * 32, "127.0.0.2", "127.0.0.1:9", 1000)
    assert by_text.check_chunk("ab" * 32, token, requester="127.0.0.2", source="127.0.0.1:9", now=1000) is None
    assert by_key.secure and not Auth(None).secure and not Auth("").secure
    assert Auth(SwarmKey.stretch(SECRET + "x")).join_key != by_key.join_key
    assert key.root.hex() not in repr(key)


def test_the_roles_environment_carries_the_key_and_no_secret() -> None:
    env = role_env(SECRET)
    assert env == {SWARM_KEY_ENV: SwarmKey.stretch(SECRET).hex(), "LANSCATTER_SECRET": ""}
    assert role_env(None) == {}


@pytest.mark.parametrize("text", ["", "ab" * 31, "AB" * 32, "zz" * 32, "ab" * 33])
def test_a_malformed_key_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="not a stretched swarm key"):
        SwarmKey.from_hex(text)
