"""The peer's frames for its master wait for room exactly as the writer takes them (roles/master_link.py)."""

from __future__ import annotations

import asyncio

from lanscatter.roles.master_link import BACKLOG, Outbox


async def test_room_waits_until_the_writer_takes_a_frame_below_the_backlog() -> None:
    outbox = Outbox()
    for k in range(BACKLOG):
        outbox.put(f"frame {k}")
    waiting = asyncio.create_task(outbox.room())
    await asyncio.sleep(0.043)
    assert not waiting.done()                     # full: the sender waits
    assert await outbox.get() == "frame 0"        # the writer takes one: room at once, not at a poll
    for _ in range(3):
        await asyncio.sleep(0)
    assert waiting.done()
    assert [await outbox.get() for _ in range(BACKLOG - 1)] == [f"frame {k}" for k in range(1, BACKLOG)]


async def test_room_is_at_once_below_the_backlog_and_frames_keep_their_order() -> None:
    outbox = Outbox()
    for k in range(BACKLOG - 1):
        outbox.put(f"frame {k}")
    async with asyncio.timeout(1):
        await outbox.room()
    assert [await outbox.get() for _ in range(BACKLOG - 1)] == [f"frame {k}" for k in range(BACKLOG - 1)]


async def test_a_closed_connection_releases_whoever_waits_for_room() -> None:
    outbox = Outbox()
    for k in range(BACKLOG + 3):
        outbox.put(f"frame {k}")
    waiters = [asyncio.create_task(outbox.room()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters)
    outbox.close()
    async with asyncio.timeout(1):
        await asyncio.gather(*waiters)


async def test_a_full_outbox_again_makes_senders_wait() -> None:
    outbox = Outbox()
    for k in range(BACKLOG):
        outbox.put(f"frame {k}")
    await outbox.get()
    await outbox.room()                           # room: BACKLOG - 1 queued
    outbox.put("again")                           # full once more
    waiting = asyncio.create_task(outbox.room())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await outbox.get()
    async with asyncio.timeout(1):
        await waiting
