"""Watching a folder for changes, off the event loop.

The watcher runs in a thread of its own, its set-up included: on Linux inotify asked for changes
only (`inotify.FolderInotify`: reading a file is no change, and a first scan reads every file),
elsewhere watchfiles (Rust notify). watchfiles' asyncio form (`awatch`) sets up its watches on the
event loop and loads anyio's backend there on first use: the origin's loop was held 50-110 ms just
as its first generation went out, and no peer's first Have was read meanwhile. Each batch of changes
is handed to the loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lanscatter.disk.inotify import FolderInotify, wait_readable

STEP_S = 0.05     # a batch ends after this long without a change (or after the debounce), as watchfiles'
# Events are read this long after they start coming, not as each comes: a build of 100,000 small
# files written into the folder woke the watcher for each of its 300,000 events (5 s of CPU, the
# GIL taken from the loop each time); 10 ms gathers a few hundred a read (0.4 s).
GATHER_S = 0.01


async def watch_folder(root: Path, on_change: Callable[[], None], *, debounce_ms: int) -> None:
    """Call `on_change` on the event loop after each batch of changes under `root`, until cancelled.
    RuntimeError: the watched folder was moved or deleted (or watchfiles gave up on a name it
    cannot decode); OSError: the folder could not be watched."""
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
            if sys.platform.startswith("linux"):
                _watch_inotify(root, lambda: tell(on_change), debounce_ms / 1000, stop)
            else:
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


def _watch_inotify(root: Path, changed: Callable[[], None], debounce_s: float, stop: threading.Event) -> None:
    """Call `changed` after each batch of changes under `root` until `stop` is set: a batch ends
    STEP_S after its last change, or `debounce_s` after its first."""
    watcher = FolderInotify(root)
    try:
        def gathered(timeout_s: float) -> bool:
            """Whether events came within `timeout_s` (those that came by GATHER_S later read)."""
            if not wait_readable(watcher.fd, timeout_s):
                return False
            time.sleep(GATHER_S)
            return True

        while not stop.is_set():
            if not (gathered(STEP_S) and watcher.read()):
                continue
            ends = time.monotonic() + debounce_s
            while not stop.is_set() and (left := ends - time.monotonic()) > 0 and gathered(min(left, STEP_S)):
                watcher.read()
            changed()
    finally:
        watcher.close()


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
