"""`lanscatter publish`: tell an origin's master to scan its source and publish it now.

The request is authenticated with the swarm secret (publish_request.py): a fresh nonce from the
master, then the MAC'd request. Prints the generation published (or already out), or the refusal
with the master's reason and hint. Answers from the master are bounded and shortened before they
are shown."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from lanscatter.cli.node import secret_args, split_hostport, swarm_secret
from lanscatter.core.auth import SECRET_HINT, Auth
from lanscatter.core.errors import AuthError, ConfigError, LanscatterError, RemoteProtocolError
from lanscatter.core.manifest import show_path
from lanscatter.core.ports import DEFAULT_MASTER_PORT
from lanscatter.core.publish_request import MAC_HEADER, PUBLISH_PATH, PublishRequest, seal_request
from lanscatter.core.signing import MAX_LABEL_CHARS

log = logging.getLogger("lanscatter.publish")

_MAX_ANSWER_BYTES = 64 * 1024


class PublishRefused(LanscatterError):
    """The master refused the request (a guard refused the source, or no such version to roll
    back to): nothing changed."""

    exit_code = 5


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = sub.add_parser("publish", help="make an origin's master publish its source now",
                        description="Make the master scan its source now and publish it as a new version "
                                    "(with a label), whatever its publish mode. A source that is empty or "
                                    "lacks more than half of the last version's files is refused unless "
                                    "--allow-shrink (docs/versions.md).")
    sp.add_argument("master", nargs="?", default="127.0.0.1", metavar="HOST[:PORT]",
                    help=f"the origin's master (default 127.0.0.1:{DEFAULT_MASTER_PORT})")
    sp.add_argument("--label", default=None, metavar="TEXT",
                    help="the version's label, shown in every host's status (default: the release folder's "
                         "name for a symlink source, else none)")
    sp.add_argument("--allow-shrink", action="store_true",
                    help="publish even an empty source, or one that deletes most files of the last version")
    sp.add_argument("--timeout", type=float, default=3600.0, metavar="S",
                    help="give up after this long (the master hashes what changed first; default 3600)")
    secret_args(sp)
    sp.set_defaults(func=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    label = args.label
    if label is not None and (len(label) > MAX_LABEL_CHARS or not label.isprintable()):
        raise ConfigError(f"a version label is printable text of at most {MAX_LABEL_CHARS} characters",
                          "shorten the label; no control characters or line breaks")
    host, port = split_hostport(args.master, DEFAULT_MASTER_PORT)
    auth = Auth(swarm_secret(args))
    answer = asyncio.run(signed_request(
        host, port, PUBLISH_PATH, lambda nonce: seal_request(auth, PublishRequest(nonce, label, args.allow_shrink)),
        args.timeout))
    if not (isinstance(answer.get("generation"), str) and isinstance(answer.get("label"), str)
            and isinstance(answer.get("changed"), bool)):
        raise RemoteProtocolError(f"{host}:{port} gave a publish answer without its fields")
    shown = f" labelled {show_path(str(answer['label']), 120)!r}" if answer["label"] else ""
    verb = "published" if answer["changed"] else "unchanged: already published"
    print(f"{verb} generation {answer['generation']}{shown}", flush=True)
    return 0


async def signed_request(host: str, port: int, path: str, seal: Callable[[str], tuple[bytes, str]],
                         timeout_s: float) -> dict[str, Any]:
    """GET a nonce at `path`, then POST the body `seal(nonce)` gives with its MAC; the master's
    JSON answer, or the error its status stands for."""
    url = f"http://{host}:{port}{path}" if ":" not in host else f"http://[{host}]:{port}{path}"
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as resp:
                nonce = _answer(resp.status, await resp.content.read(_MAX_ANSWER_BYTES)).get("nonce")
            if not isinstance(nonce, str):
                raise RemoteProtocolError(f"{host}:{port} did not give a request nonce")
            body, mac = seal(nonce)
            async with session.post(url, data=body, headers={MAC_HEADER: mac, "Content-Type": "application/json"}) as resp:
                answer = _answer(resp.status, await resp.content.read(_MAX_ANSWER_BYTES))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the master at {host}:{port}: {exc or type(exc).__name__}",
                          "give the origin's master as HOST[:PORT], and check that it runs") from None
    return answer


def _answer(status: int, raw: bytes) -> dict[str, Any]:
    """The master's JSON answer, or the error its status and text stand for."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"the master answered HTTP {status} without a JSON object "
                                  "(is this the origin's master port?)")
    error = show_path(str(data.get("error", "")), 400)
    hint = show_path(str(data["hint"]), 400) if data.get("hint") else None
    if status == 403:
        raise AuthError(f"the master refused the request: {error}", SECRET_HINT)
    if status == 409:
        raise PublishRefused(error, hint)
    if status != 200:
        raise RemoteProtocolError(f"the master answered HTTP {status}: {error}")
    return data
