"""The master's `/publish` and `/rollback` endpoints: the I/O shell around `publish_request.py`
(the nonce, the MAC'd request) that asks the master to publish, or to roll the tree back, and
answers with the outcome (statuses in the protocol table of `publish_request.py`).

A request without the secret, with a used nonce, or malformed changes nothing: the first two are a
warning event on the master (who sent it, never what), a malformed one a warning line."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from lanscatter.core.auth import Auth
from lanscatter.core.errors import AuthError, ConfigError, RemoteProtocolError
from lanscatter.core.publish_policy import Refusal
from lanscatter.core.publish_request import (
    MAC_HEADER,
    MAX_BODY_BYTES,
    PUBLISH_PATH,
    ROLLBACK_PATH,
    NonceBook,
    open_request,
    open_rollback,
)

log = logging.getLogger("lanscatter.roles.master")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Published:
    """The version a publish left in place (`changed`: a new one, not the one already out)."""

    generation: str
    label: str
    published_ms: int
    changed: bool


@dataclass(frozen=True, slots=True)
class RolledBack:
    """The version every host shows after a tree-wide rollback (`instead`: of the current one)."""

    generation: str
    label: str
    instead: str


PublishFn = Callable[[str | None, bool], Awaitable[Published | Refusal]]   # (label, allow_shrink)
RollbackFn = Callable[[str | None], Awaitable[RolledBack | Refusal]]     # (to)


class PublishEndpoint:
    def __init__(self, auth: Auth, publish: PublishFn, event: Callable[[str, str], None],
                 rollback: RollbackFn | None = None) -> None:
        self._auth = auth
        self._publish = publish
        self._rollback = rollback
        self._event = event
        self._nonces = NonceBook()

    def routes(self) -> list[web.RouteDef]:
        routes = [web.get(PUBLISH_PATH, self._nonce), web.post(PUBLISH_PATH, self._request)]
        if self._rollback is not None:
            routes += [web.get(ROLLBACK_PATH, self._nonce), web.post(ROLLBACK_PATH, self._rollback_request)]
        return routes

    async def _nonce(self, _request: web.Request) -> web.Response:
        return web.json_response({"nonce": self._nonces.issue(secrets.token_hex(16), time.monotonic())})

    async def _opened(self, request: web.Request, what: str,
                      opener: Callable[[Auth, bytes, str | None, NonceBook, float], R]) -> R | web.Response:
        """The `what` request `opener` reads from the body, once bounded and authenticated; else the
        answer: 400 for a malformed one, 403 for one without the secret or with a spent nonce."""
        who = request.remote or "?"
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _malformed(who, f"a {what} request is at most {MAX_BODY_BYTES} bytes", what)
        body = await request.read()           # bounded by the app's client_max_size
        try:
            return opener(self._auth, body, request.headers.get(MAC_HEADER), self._nonces, time.monotonic())
        except AuthError as exc:
            self._event("warning", f"refused a {what} request from {who}: {exc.message}")
            return web.json_response({"error": exc.message}, status=403)
        except RemoteProtocolError as exc:
            return _malformed(who, exc.message, what)

    async def _request(self, request: web.Request) -> web.Response:
        who = request.remote or "?"
        req = await self._opened(request, "publish", open_request)
        if isinstance(req, web.Response):
            return req
        log.info("publish requested from %s", who)
        try:
            outcome = await self._publish(req.label, req.allow_shrink)
        except ConfigError as exc:
            return web.json_response({"error": exc.message, "hint": exc.hint}, status=409)
        if isinstance(outcome, Refusal):
            return web.json_response({"error": f"not published: {outcome.reason}", "hint": outcome.hint},
                                     status=409)
        return web.json_response({"generation": outcome.generation, "label": outcome.label,
                                  "published_ms": outcome.published_ms, "changed": outcome.changed})

    async def _rollback_request(self, request: web.Request) -> web.Response:
        who = request.remote or "?"
        assert self._rollback is not None
        req = await self._opened(request, "rollback", open_rollback)
        if isinstance(req, web.Response):
            return req
        log.info("tree rollback requested from %s", who)
        outcome = await self._rollback(req.to)
        if isinstance(outcome, Refusal):
            return web.json_response({"error": f"not rolled back: {outcome.reason}", "hint": outcome.hint},
                                     status=409)
        return web.json_response({"generation": outcome.generation, "label": outcome.label,
                                  "instead": outcome.instead})


def _malformed(who: str, why: str, what: str) -> web.Response:
    log.warning("malformed %s request from %s: %s", what, who, why)
    return web.json_response({"error": f"protocol error: {why}"}, status=400)
