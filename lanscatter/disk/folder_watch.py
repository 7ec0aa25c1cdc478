"""Watching a folder for changes, off the event loop.

The watcher (watchfiles: Rust notify over inotify) runs in a thread of its own, its set-up included.
Its asyncio form (`awatch`) sets it up on the event loop, a watch on every folder of the tree, and
loads anyio's backend there on first use: the origin's loop was held 50-110 ms just as its first
generation went out, and no peer's first Have was read meanwhile. Each batch of changes is handed to
the loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path


async def watch_folder(root: Path, on_change: Callable[[], None], *, debounce_ms: int) -> None:
    """Call `on_change` on the event loop after each batch of changes under `root`, until cancelled.
    RuntimeError: the watcher stopped (it gives up on a name it cannot decode)."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    done: asyncio.Future[None] = loop.create_future()

    def tell(fn: Callable[..., object], *args: object) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass                # the loop closed after the watch was cancelled: nobody to tell

    def run() -> None:
        try:
            from watchfiles import watch

            for _changes in watch(root, debounce=debounce_ms, recursive=True, stop_event=stop):
                tell(on_change)
        except BaseException as exc:  # noqa: BLE001 (handed to the awaiting task, which decides)
            tell(_settle, done, exc)
        else:
            tell(_settle, done, None)

    threading.Thread(target=run, name=f"watch {root.name}", daemon=True).start()
    try:
        await done
    finally:
        stop.set()              # the watcher checks it every 50 ms


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
