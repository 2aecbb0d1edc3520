"""The API's read scheduler: identical requests share one read, the queue and the read time
are bounded (200 concurrent dashboard requests queued behind 4 slots for up to 60 s before)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hundi.api.server import Busy, _Reads


async def test_identical_requests_share_one_read_and_its_answer() -> None:
    reads = _Reads(slots=4, max_waiting=8, timeout_s=30, ttl_s=60)
    release = threading.Event()
    calls = 0

    def slow_read() -> list[int]:
        nonlocal calls
        calls += 1
        assert release.wait(30)
        return [1, 2, 3]

    waiting = [asyncio.ensure_future(reads.run("/bars?BTC", slow_read)) for _ in range(200)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(*waiting)
    assert answers == [[1, 2, 3]] * 200
    assert calls == 1 and reads.reads == 1
    assert await reads.run("/bars?BTC", slow_read) == [1, 2, 3]  # from the answer cache
    assert calls == 1
    assert await reads.run("/bars?ETH", lambda: [4]) == [4]  # another request reads
    assert reads.reads == 2


async def test_a_full_queue_answers_busy_instead_of_waiting_without_bound() -> None:
    reads = _Reads(slots=1, max_waiting=2, timeout_s=30, ttl_s=0)
    release = threading.Event()

    def blocked() -> int:
        assert release.wait(30)
        return 1

    running = asyncio.ensure_future(reads.run(None, blocked))
    queued = [asyncio.ensure_future(reads.run(None, blocked)) for _ in range(2)]
    for _ in range(100):
        await asyncio.sleep(0.01)
        if reads.waiting == 2:
            break
    assert reads.waiting == 2
    with pytest.raises(Busy, match="2 requests are waiting"):
        await reads.run(None, blocked)
    release.set()
    assert await asyncio.gather(running, *queued) == [1, 1, 1]


async def test_a_slow_read_times_out_but_keeps_its_slot_until_it_ends() -> None:
    reads = _Reads(slots=1, max_waiting=4, timeout_s=0.2, ttl_s=0)
    release = threading.Event()
    with pytest.raises(Busy, match=r"longer than 0\.2 s"):
        await reads.run(None, lambda: release.wait(30))
    assert reads.slots.locked()  # the thread still runs: its slot stays taken
    release.set()
    for _ in range(500):
        if not reads.slots.locked():
            break
        await asyncio.sleep(0.01)
    assert not reads.slots.locked()
    assert await reads.run(None, lambda: 7) == 7
