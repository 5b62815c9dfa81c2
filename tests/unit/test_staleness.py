"""StaleCache: re-read at most once per ttl, ``None`` cached too, bounded, forgettable."""

from __future__ import annotations

import asyncio

from bastion.staleness import StaleCache


class Loader:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.value: str | None = "v1"

    async def __call__(self, key: str) -> str | None:
        self.calls.append(key)
        return self.value


async def test_a_value_is_reused_until_its_ttl_runs_out() -> None:
    now = [0.0]
    cache: StaleCache[str, str] = StaleCache(ttl=1.0, clock=lambda: now[0])
    load = Loader()
    assert await cache.get("k", load) == "v1"
    load.value = "v2"
    now[0] = 0.99
    assert await cache.get("k", load) == "v1"
    now[0] = 1.0
    assert await cache.get("k", load) == "v2"
    assert load.calls == ["k", "k"]


async def test_absence_is_cached_as_well() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = Loader()
    load.value = None
    assert await cache.get("missing", load) is None
    assert await cache.get("missing", load) is None
    assert load.calls == ["missing"]


async def test_forget_forces_the_next_read() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = Loader()
    await cache.get("k", load)
    cache.forget("k")
    load.value = "v2"
    assert await cache.get("k", load) == "v2"


async def test_the_cache_never_grows_past_its_bound_and_evicts_the_oldest() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0, max_entries=2)
    load = Loader()
    for key in ("a", "b", "c"):
        await cache.get(key, load)
    await cache.get("c", load)
    await cache.get("b", load)  # still cached: a flood of new keys evicts one at a time
    await cache.get("a", load)
    assert load.calls == ["a", "b", "c", "a"]


class SlowLoader(Loader):
    """A loader that holds every read open until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.failure: Exception | None = None

    async def __call__(self, key: str) -> str | None:
        self.calls.append(key)
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return self.value


async def test_concurrent_misses_share_one_read() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = SlowLoader()
    waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(50)]
    await asyncio.sleep(0)
    load.release.set()
    assert await asyncio.gather(*waiters) == ["v1"] * 50
    assert load.calls == ["k"]


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = SlowLoader()
    load.failure = RuntimeError("database down")
    waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(3)]
    await asyncio.sleep(0)
    load.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3
    load.failure = None
    assert await cache.get("k", load) == "v1"
    assert load.calls == ["k", "k"]


async def test_a_cancelled_waiter_does_not_cancel_the_shared_read() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = SlowLoader()
    first = asyncio.create_task(cache.get("k", load))
    second = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    second.cancel()
    load.release.set()
    assert await first == "v1"
    assert load.calls == ["k"]


async def test_forget_during_a_read_keeps_its_result_out_of_the_cache() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = SlowLoader()
    reading = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    cache.forget("k")  # e.g. this worker revoked the key while the read was under way
    load.release.set()
    assert await reading == "v1"
    load.value = "revoked"
    assert await cache.get("k", load) == "revoked"


async def test_waiters_read_for_themselves_when_the_reading_request_is_cancelled() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = SlowLoader()
    reader = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.sleep(0)
    load.release.set()
    assert await waiter == "v1"
    assert load.calls == ["k", "k"]


async def test_refresh_changes_a_cached_value_but_never_brings_back_a_forgotten_one() -> None:
    """A session's touch refreshes what is cached; a logout that forgot it meanwhile wins."""
    cache: StaleCache[str, str] = StaleCache(ttl=60.0)
    load = Loader()
    await cache.get("k", load)
    cache.refresh("k", "touched")
    assert await cache.get("k", load) == "touched"
    cache.forget("k")
    cache.refresh("k", "touched again")
    load.value = "revoked"
    assert await cache.get("k", load) == "revoked"
