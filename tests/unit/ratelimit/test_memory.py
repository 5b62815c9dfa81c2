"""The in-process storage (SPEC §5, §7): the library's counting, with windows that end on time,
memory handed back as they end, and no scan of every client's key on a hit."""

from __future__ import annotations

from bastion.ratelimit.limiter import Limiter, storage_for
from bastion.ratelimit.memory import InProcessStorage
from bastion.ratelimit.policies import Policy
from tests.unit.ratelimit.conftest import Clock


def test_it_is_the_default_storage() -> None:
    assert isinstance(storage_for(None), InProcessStorage)


async def test_a_window_counts_then_ends_on_time(clock: Clock) -> None:
    storage = InProcessStorage()

    counts = [await storage.incr("k", 60) for _ in range(3)]
    clock.now += 59.9
    last_in_window = await storage.incr("k", 60)
    clock.now += 0.1
    after = await storage.get("k")
    reopened = await storage.incr("k", 60)

    assert counts == [1, 2, 3]
    assert last_in_window == 4
    assert after == 0
    assert reopened == 1
    assert await storage.get_expiry("k") == clock.now + 60


async def test_ended_windows_of_many_clients_are_forgotten_on_the_next_hit(clock: Clock) -> None:
    """A flood from 10,000 addresses leaves nothing behind once its windows end."""
    storage = InProcessStorage()
    for n in range(10_000):
        await storage.incr(f"ip/203.0.113.{n}", 60)
    clock.now += 30
    await storage.incr("ip/198.51.100.1", 60)  # a window still open for everyone
    assert len(storage.storage) == 10_001

    clock.now += 31
    await storage.incr("ip/198.51.100.2", 60)

    assert set(storage.storage) == {"ip/198.51.100.1", "ip/198.51.100.2"}
    assert set(storage.expirations) == set(storage.storage)
    assert len(storage._ends) == 2


async def test_no_task_scans_the_keys_behind_the_hits(clock: Clock) -> None:
    """The library's storage starts a task per hit that walks every key it holds."""
    storage = InProcessStorage()
    for n in range(100):
        await storage.incr(f"k{n}", 60)
        await storage.acquire_entry(f"m{n}", 5, 60)
        await storage.decr(f"k{n}")

    assert storage.timer is None


async def test_a_cleared_key_opened_again_keeps_its_new_window(clock: Clock) -> None:
    storage = InProcessStorage()
    await storage.incr("k", 60)
    clock.now += 30
    await storage.clear("k")
    await storage.incr("k", 60)  # ends at +90, while the first window's entry says +60

    clock.now += 31
    await storage.incr("other", 60)

    assert await storage.get("k") == 1


async def test_decrement_stops_at_zero_and_never_reopens_an_ended_window(clock: Clock) -> None:
    storage = InProcessStorage()
    await storage.incr("k", 60, amount=2)

    assert await storage.decr("k", 5) == 0
    clock.now += 61
    assert await storage.decr("k") == 0
    assert "k" not in storage.expirations


async def test_the_moving_window_refuses_within_and_frees_as_entries_age(clock: Clock) -> None:
    limiter = Limiter(InProcessStorage(), strategy="moving-window", clock=clock)
    policy = Policy.parse("ip", "2/minute")

    first = [await limiter.hit(policy, "k") for _ in range(2)]
    clock.now += 30
    refused = await limiter.hit(policy, "k")
    clock.now += 31  # the first two entries are out of the window
    again = await limiter.hit(policy, "k")

    assert [d.is_allowed for d in first] == [True, True]
    assert not refused.is_allowed
    assert again.is_allowed


async def test_moving_window_events_are_bounded_and_swept(clock: Clock) -> None:
    storage = InProcessStorage()
    for _ in range(50):
        await storage.acquire_entry("k", 3, 60)
        clock.now += 0.5

    assert len(storage.events["k"]) == 3
    clock.now += 61
    await storage.incr("other", 60)
    assert "k" not in storage.events


async def test_the_sliding_window_counter_weighs_the_previous_window(clock: Clock) -> None:
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 60  # the start of a window
    limiter = Limiter(InProcessStorage(), strategy="sliding-window-counter", clock=clock)
    policy = Policy.parse("ip", "4/minute")

    opening = [await limiter.hit(policy, "k") for _ in range(5)]
    clock.now += 60 + 30  # half way into the next window: half the previous one still counts
    later = [await limiter.hit(policy, "k") for _ in range(3)]

    assert [d.is_allowed for d in opening] == [True, True, True, True, False]
    assert [d.is_allowed for d in later] == [True, True, False]


async def test_a_busy_moving_window_key_outlives_its_first_window(clock: Clock) -> None:
    """The key's first heap entry comes due while newer entries are in the window: dropping
    the key then would allow a burst."""
    storage = InProcessStorage()
    assert await storage.acquire_entry("k", 2, 60)
    clock.now += 50
    assert await storage.acquire_entry("k", 2, 60)
    clock.now += 11  # the first entry is out, the second in

    allowed = await storage.acquire_entry("k", 2, 60)
    clock.now += 1
    refused = await storage.acquire_entry("k", 2, 60)

    assert allowed
    assert not refused


async def test_a_moving_window_entry_counts_to_the_end_of_its_window(clock: Clock) -> None:
    """As the library decides: an entry exactly ``expiry`` old is still inside."""
    storage = InProcessStorage()
    for _ in range(3):
        assert await storage.acquire_entry("k", 3, 60)

    clock.now += 60
    at_the_edge = await storage.acquire_entry("k", 3, 60)
    clock.now += 0.001
    after = await storage.acquire_entry("k", 3, 60)

    assert not at_the_edge
    assert after


async def test_clearing_a_busy_moving_window_key_keeps_one_heap_entry(clock: Clock) -> None:
    storage = InProcessStorage()
    for _ in range(1000):
        await storage.acquire_entry("k", 5, 60)
        await storage.clear("k")
        await storage.acquire_entry("k", 5, 60)
    for _ in range(100):
        clock.now += 1
        await storage.acquire_entry("k", 5, 60)

    assert len(storage._event_ends) == 1
