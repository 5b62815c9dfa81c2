"""Lockout (SPEC §5): ``threshold`` failures within any ``window`` seconds lock a name, with a
back-off that doubles; the window rolls, so no burst escapes by straddling a boundary. The
clock is the lockout's own, set by each test."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from bastion.lockout import AccountLocked, Lockout
from bastion.storage.db import Database

START = 1_800_000_000.0
WINDOW = 900


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> None:
        self.now = START + offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lockout(db: Database, clock: Clock) -> Lockout:
    return Lockout(
        db,
        threshold=5,
        window_seconds=WINDOW,
        base_lock_seconds=60,
        max_lock_seconds=3600,
        clock=clock,
    )


async def fail(db: Database, lockout: Lockout, times: int = 1, name: str = "alice") -> list[bool]:
    """Count ``times`` failures, each in its own transaction; which of them locked."""
    locked = []
    for _ in range(times):
        locked.append(await db.run(lambda session: lockout.count_failure(session, name)))
    return locked


async def retry_after(lockout: Lockout, name: str = "alice") -> int | None:
    try:
        await lockout.check(name)
    except AccountLocked as exc:
        return exc.retry_after
    return None


async def test_five_failures_lock_on_the_fifth(db: Database, lockout: Lockout) -> None:
    assert await fail(db, lockout, 5) == [False] * 4 + [True]
    assert await retry_after(lockout) == 60


async def test_a_burst_straddling_the_first_failures_window_still_locks(
    db: Database, lockout: Lockout, clock: Clock
) -> None:
    """1 failure at t=0, 3 at t=899, 4 at t=901: seven failures in two seconds. A window that
    starts at the first failure and resets after 900 s counts 4, then 1..4 again, and never
    locks; a rolling one has five within 900 s at the second failure of t=901 (the one of t=0
    has left the window by then)."""
    assert await fail(db, lockout, 1) == [False]
    clock.at(899)
    assert await fail(db, lockout, 3) == [False] * 3
    clock.at(901)
    assert await fail(db, lockout, 2) == [False, True]
    assert await retry_after(lockout) == 60


async def test_failures_spread_wider_than_the_window_do_not_lock(
    db: Database, lockout: Lockout, clock: Clock
) -> None:
    for n in range(12):
        clock.at(n * (WINDOW / 4 + 1))  # at most four failures in any 900 s
        assert await fail(db, lockout, 1) == [False]
    assert await retry_after(lockout) is None


async def test_failures_exactly_one_window_apart_are_within_it(
    db: Database, lockout: Lockout, clock: Clock
) -> None:
    assert await fail(db, lockout, 4) == [False] * 4
    clock.at(WINDOW)
    assert await fail(db, lockout, 1) == [True]


async def test_each_lock_lasts_twice_the_one_before_up_to_the_maximum(
    db: Database, lockout: Lockout, clock: Clock
) -> None:
    offset = 0.0
    durations = []
    for _ in range(8):
        assert (await fail(db, lockout, 5))[-1] is True
        duration = await retry_after(lockout)
        assert duration is not None
        durations.append(duration)
        offset += duration + 1
        clock.at(offset)
    assert durations == [60, 120, 240, 480, 960, 1920, 3600, 3600]


async def test_the_failures_that_locked_are_used_up_by_the_lock(
    db: Database, lockout: Lockout, clock: Clock
) -> None:
    """Once a lock has expired the name has a full ``threshold`` of attempts again, although
    the failures that locked it are still within the window."""
    await fail(db, lockout, 5)
    clock.at(61)
    assert await retry_after(lockout) is None
    assert await fail(db, lockout, 5) == [False] * 4 + [True]


async def test_clearing_forgets_failures_and_back_off(
    db: Database, lockout: Lockout, clock: Clock
) -> None:
    await fail(db, lockout, 5)
    async with db.transaction() as session:
        assert await lockout.clear(session, "alice") is True
    assert await retry_after(lockout) is None
    assert await fail(db, lockout, 5) == [False] * 4 + [True]
    assert await retry_after(lockout) == 60  # the back-off started over
    async with db.transaction() as session:
        await lockout.clear(session, "alice")
        assert await lockout.clear(session, "alice") is False


async def test_names_are_counted_apart(db: Database, lockout: Lockout) -> None:
    await fail(db, lockout, 4, name="alice")
    assert await fail(db, lockout, 1, name="bob") == [False]
    assert await retry_after(lockout, "bob") is None


async def test_a_rolled_back_failure_is_not_counted(db: Database, lockout: Lockout) -> None:
    """The counter commits with the caller's transaction, and so with its events."""

    class Boom(Exception):
        pass

    def lock_then_fail(session: Session) -> None:
        assert lockout.count_failure(session, "alice") is True
        raise Boom

    await fail(db, lockout, 4)
    with pytest.raises(Boom):
        await db.run(lock_then_fail)
    assert await retry_after(lockout) is None
    assert await fail(db, lockout, 1) == [True]


async def test_concurrent_failures_in_worker_threads_are_all_counted(
    db: Database, lockout: Lockout
) -> None:
    """Each failure is a unit of work in its own thread (``Database.run``); SQLite's write lock,
    taken at BEGIN, serialises them, so a burst of five guesses at once locks like five in a
    row: exactly one of them locks, and none is lost to a lost update."""
    import asyncio

    locked = await asyncio.gather(
        *(db.run(lambda session: lockout.count_failure(session, "alice")) for _ in range(5))
    )
    assert sorted(locked) == [False] * 4 + [True]
    assert await retry_after(lockout) == 60
