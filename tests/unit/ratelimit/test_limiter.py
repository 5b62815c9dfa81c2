"""The limiter over the `limits` library (SPEC §3, §5): decisions, the numbers for the
``RateLimit`` fields, one storage call per hit, and named decisions when the storage fails."""

from __future__ import annotations

from typing import Any

import pytest
from limits.aio.storage import MemoryStorage

from bastion.errors import ServiceUnavailable
from bastion.ratelimit.limiter import Limiter, storage_for
from bastion.ratelimit.memory import InProcessStorage
from bastion.ratelimit.policies import Policy
from tests.unit.ratelimit.conftest import Clock


class CountingStorage(MemoryStorage):
    """The library's in-memory storage, counting the calls a hit makes (each one would be a
    Redis round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self._inside = False

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.calls.append("incr")
        self._inside = True  # its own inner get() is part of the one call
        try:
            return await super().incr(key, expiry, amount)
        finally:
            self._inside = False

    async def get(self, key: str) -> int:
        if not self._inside:
            self.calls.append("get")
        return await super().get(key)

    async def get_expiry(self, key: str) -> float:
        self.calls.append("get_expiry")
        return await super().get_expiry(key)


BOTH_MEMORIES = pytest.mark.parametrize(
    "memory", [MemoryStorage, InProcessStorage], ids=["library", "in-process"]
)
"""The library's storage goes through the fixed window's coroutines, as Redis does; Bastion's
in-process one through its one-call path. Both must decide and number alike."""


@BOTH_MEMORIES
async def test_decisions_count_down_to_a_refusal_with_the_fields_numbers(
    clock: Clock, memory: type[MemoryStorage]
) -> None:
    limiter = Limiter(memory(), clock=clock)
    policy = Policy.parse("ip", "3/minute")

    decisions = [await limiter.hit(policy, "198.51.100.7") for _ in range(4)]

    assert [d.is_allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(1 <= d.reset_after <= 60 for d in decisions)
    assert decisions[0].limit_field == '"ip";r=2;t=60'


@BOTH_MEMORIES
async def test_the_fields_count_down_to_the_end_of_the_window(
    clock: Clock, memory: type[MemoryStorage]
) -> None:
    limiter = Limiter(memory(), clock=clock)
    policy = Policy.parse("ip", "5/minute")

    opened = await limiter.hit(policy, "k")
    clock.now += 20.5
    later = await limiter.hit(policy, "k")
    clock.now += 39
    last_second = await limiter.hit(policy, "k")

    assert [opened.reset_after, later.reset_after, last_second.reset_after] == [60, 40, 1]
    assert [opened.remaining, later.remaining, last_second.remaining] == [4, 3, 2]


@BOTH_MEMORIES
async def test_keys_and_policies_have_buckets_of_their_own(
    clock: Clock, memory: type[MemoryStorage]
) -> None:
    limiter = Limiter(memory(), clock=clock)
    ip, principal = Policy.parse("ip", "1/minute"), Policy.parse("principal", "1/minute")

    assert (await limiter.hit(ip, "a")).is_allowed
    assert (await limiter.hit(ip, "b")).is_allowed
    assert (await limiter.hit(principal, "a")).is_allowed
    assert not (await limiter.hit(ip, "a")).is_allowed


async def test_a_hit_costs_one_storage_call_once_the_window_is_known(clock: Clock) -> None:
    storage = CountingStorage()
    limiter = Limiter(storage, clock=clock)
    policy = Policy.parse("ip", "100/minute")

    for _ in range(5):
        await limiter.hit(policy, "198.51.100.7")

    assert storage.calls == ["incr"] * 5


async def test_a_window_opened_by_another_worker_is_asked_for_once(clock: Clock) -> None:
    shared = CountingStorage()
    first, second = Limiter(shared, clock=clock), Limiter(shared, clock=clock)
    policy = Policy.parse("ip", "100/minute")
    await first.hit(policy, "k")
    clock.now += 20
    shared.calls.clear()

    decisions = [await second.hit(policy, "k") for _ in range(3)]

    assert shared.calls == ["incr", "get_expiry", "incr", "incr"]
    assert [d.reset_after for d in decisions] == [40, 40, 40]  # the first worker's window


@BOTH_MEMORIES
async def test_a_new_window_starts_full_when_the_old_one_ends(
    clock: Clock, memory: type[MemoryStorage]
) -> None:
    limiter = Limiter(memory(), clock=clock)
    policy = Policy.parse("ip", "2/minute")
    for _ in range(3):
        await limiter.hit(policy, "k")
    clock.now += 61

    fresh = await limiter.hit(policy, "k")

    assert fresh.is_allowed
    assert fresh.remaining == 1
    assert fresh.reset_after == 60


async def test_other_strategies_still_give_the_numbers(clock: Clock) -> None:
    limiter = Limiter(MemoryStorage(), strategy="moving-window", clock=clock)
    policy = Policy.parse("ip", "2/minute")

    decisions = [await limiter.hit(policy, "k") for _ in range(3)]

    assert [(d.is_allowed, d.remaining) for d in decisions] == [(True, 1), (True, 0), (False, 0)]


class BrokenStorage(MemoryStorage):
    async def incr(self, *_args: Any, **_kwargs: Any) -> int:
        raise ConnectionError("redis is down")


async def test_a_failing_storage_opens_or_closes_as_configured(clock: Clock) -> None:
    modes: list[str] = []
    limiter = Limiter(BrokenStorage(), clock=clock, on_degraded=modes.append)
    policy = Policy.parse("login", "10/minute")

    opened = await limiter.hit(policy, "k", on_error="open")
    with pytest.raises(ServiceUnavailable) as closed:
        await limiter.hit(policy, "k", on_error="closed")

    assert opened.is_allowed
    assert closed.value.headers.get("Retry-After") or closed.value.response_headers()
    assert modes == ["open", "closed"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "RedisStorage"),
        ("rediss://cache.internal:6380/0", "RedisStorage"),
        ("redis+sentinel://127.0.0.1:26379/mymaster", "RedisSentinelStorage"),
        ("redis+cluster://127.0.0.1:7000", "RedisClusterStorage"),
    ],
)
def test_sentinel_and_cluster_urls_are_accepted_as_the_library_reads_them(
    url: str, kind: str
) -> None:
    """Built without connecting; only the plain-Redis path is exercised against a server."""
    assert type(storage_for(url)).__name__ == kind


def test_no_url_means_in_process_storage() -> None:
    assert isinstance(storage_for(None), MemoryStorage)
