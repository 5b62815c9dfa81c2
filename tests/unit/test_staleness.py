"""StaleCache: re-read at most once per ttl, ``None`` cached too, bounded, forgettable."""

from __future__ import annotations

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


async def test_the_cache_never_grows_past_its_bound() -> None:
    cache: StaleCache[str, str] = StaleCache(ttl=60.0, max_entries=2)
    load = Loader()
    for key in ("a", "b", "c"):
        await cache.get(key, load)
    await cache.get("a", load)
    assert load.calls == ["a", "b", "c", "a"]
