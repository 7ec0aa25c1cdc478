"""The folder watcher runs in a thread of its own (its set-up, a watch on every folder, held the
origin's event loop as its first generation went out), tells the loop of each batch of changes, and
stops with the task that awaits it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from lanscatter.disk.folder_watch import watch_folder


def _watch_threads(root: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"watch {root.name}"]


async def test_changes_reach_the_loop_and_the_thread_ends_with_the_task(tmp_path: Path) -> None:
    root = tmp_path / "source"
    for k in range(200):                    # a tree of folders, each of which gets a watch
        (root / f"d{k:03d}").mkdir(parents=True)
    loop_thread = threading.get_ident()
    calls: list[int] = []
    changed = asyncio.Event()

    def on_change() -> None:
        calls.append(threading.get_ident())
        changed.set()

    task = asyncio.create_task(watch_folder(root, on_change, debounce_ms=50))
    try:
        async with asyncio.timeout(10):
            while not _watch_threads(root):
                await asyncio.sleep(0.01)
            # (the watch is set up in that thread: a write made before it is in place is not
            # seen, so write until one is)
            k = 0
            while not changed.is_set():
                (root / "d150" / f"new{k}.bin").write_bytes(b"x")
                k += 1
                try:
                    async with asyncio.timeout(0.5):
                        await changed.wait()
                except TimeoutError:
                    pass
        assert calls and set(calls) == {loop_thread}        # told on the event loop's own thread
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with asyncio.timeout(5):
        while _watch_threads(root):
            await asyncio.sleep(0.02)


async def test_a_watcher_that_fails_raises_in_the_awaiting_task(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    async with asyncio.timeout(10):
        try:
            await watch_folder(missing, lambda: None, debounce_ms=50)
        except OSError:
            pass
        else:
            raise AssertionError("watching a missing folder ended without an error")
        while _watch_threads(missing):              # and its thread ends
            await asyncio.sleep(0.02)
