"""PasswordHasher: Argon2id off the event loop, re-hash on parameter change, bounded queue
(SPEC §8)."""

from __future__ import annotations

import asyncio

import pytest

from bastion.errors import ServiceUnavailable, render_bastion_error
from bastion.passwords import PasswordHasher
from tests.conftest import FAST_HASHING, STRONG_PASSWORD

FAST = {
    "time_cost": FAST_HASHING["argon2_time_cost"],
    "memory_cost": FAST_HASHING["argon2_memory_cost"],
}


def fast_hasher(**overrides: int) -> PasswordHasher:
    return PasswordHasher(**{**FAST, **overrides})


async def test_default_parameters_are_argon2id_with_owasp_settings() -> None:
    password_hash = await PasswordHasher().hash(STRONG_PASSWORD)

    assert password_hash.startswith("$argon2id$")
    assert "$m=19456,t=2,p=1$" in password_hash


async def test_the_hash_never_contains_the_password() -> None:
    password_hash = await fast_hasher().hash(STRONG_PASSWORD)

    assert STRONG_PASSWORD not in password_hash


async def test_hashing_the_same_password_twice_gives_different_salted_hashes() -> None:
    hasher = fast_hasher()

    assert await hasher.hash(STRONG_PASSWORD) != await hasher.hash(STRONG_PASSWORD)


async def test_the_right_password_verifies_without_a_new_hash() -> None:
    hasher = fast_hasher()
    password_hash = await hasher.hash(STRONG_PASSWORD)

    assert await hasher.verify(STRONG_PASSWORD, password_hash) == (True, None)


@pytest.mark.parametrize(
    "attempt", ["wrong password entirely", STRONG_PASSWORD.upper(), STRONG_PASSWORD + " ", ""]
)
async def test_a_wrong_password_does_not_verify(attempt: str) -> None:
    hasher = fast_hasher()
    password_hash = await hasher.hash(STRONG_PASSWORD)

    assert await hasher.verify(attempt, password_hash) == (False, None)


async def test_verify_returns_a_new_hash_when_the_parameters_changed() -> None:
    old_hash = await fast_hasher(time_cost=1).hash(STRONG_PASSWORD)
    current = fast_hasher(time_cost=3)

    valid, new_hash = await current.verify(STRONG_PASSWORD, old_hash)

    assert valid is True
    assert new_hash is not None
    assert new_hash != old_hash
    assert ",t=3," in new_hash
    assert await current.verify(STRONG_PASSWORD, new_hash) == (True, None)


async def test_no_new_hash_is_offered_for_a_wrong_password_under_old_parameters() -> None:
    old_hash = await fast_hasher(time_cost=1).hash(STRONG_PASSWORD)

    assert await fast_hasher(time_cost=3).verify("not the password!", old_hash) == (False, None)


async def test_verify_dummy_does_the_work_of_a_verify_and_caches_its_hash() -> None:
    hasher = fast_hasher()

    await hasher.verify_dummy(STRONG_PASSWORD)
    await hasher.verify_dummy("another guess at it")

    # Still usable for real work afterwards: nothing stayed pending.
    password_hash = await hasher.hash(STRONG_PASSWORD)
    assert await hasher.verify(STRONG_PASSWORD, password_hash) == (True, None)


async def test_a_full_queue_refuses_extra_verifies_with_503() -> None:
    hasher = fast_hasher(concurrency=1, queue_size=0)
    password_hash = await hasher.hash(STRONG_PASSWORD)

    # gather starts every coroutine in the same loop iteration: the first takes the only slot
    # before any of them can finish, so the others find the queue full, deterministically.
    results = await asyncio.gather(
        *(hasher.verify(STRONG_PASSWORD, password_hash) for _ in range(4)),
        return_exceptions=True,
    )

    assert results[0] == (True, None)
    assert all(isinstance(r, ServiceUnavailable) for r in results[1:]), results


async def test_callers_within_the_queue_size_wait_and_succeed() -> None:
    hasher = fast_hasher(concurrency=1, queue_size=2)
    password_hash = await hasher.hash(STRONG_PASSWORD)

    results = await asyncio.gather(
        *(hasher.verify(STRONG_PASSWORD, password_hash) for _ in range(4)),
        return_exceptions=True,
    )

    assert results[:3] == [(True, None)] * 3
    assert isinstance(results[3], ServiceUnavailable)


async def test_the_queue_frees_up_once_the_running_hashes_finish() -> None:
    hasher = fast_hasher(concurrency=1, queue_size=0)
    password_hash = await hasher.hash(STRONG_PASSWORD)
    await asyncio.gather(
        *(hasher.verify(STRONG_PASSWORD, password_hash) for _ in range(3)),
        return_exceptions=True,
    )

    assert await hasher.verify(STRONG_PASSWORD, password_hash) == (True, None)


async def test_an_unrecognised_stored_hash_verifies_nothing_and_frees_its_slot() -> None:
    hasher = fast_hasher(concurrency=1, queue_size=0)

    assert await hasher.verify(STRONG_PASSWORD, "$argon2id$not-a-hash") == (False, None)

    password_hash = await hasher.hash(STRONG_PASSWORD)
    assert await hasher.verify(STRONG_PASSWORD, password_hash) == (True, None)


async def test_the_busy_error_is_a_503_with_retry_after() -> None:
    hasher = fast_hasher(concurrency=1, queue_size=0)
    password_hash = await hasher.hash(STRONG_PASSWORD)

    results = await asyncio.gather(
        hasher.verify(STRONG_PASSWORD, password_hash),
        hasher.hash(STRONG_PASSWORD),
        return_exceptions=True,
    )

    busy = results[1]
    assert isinstance(busy, ServiceUnavailable)
    response = render_bastion_error(busy)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["content-type"] == "application/problem+json"


async def test_hashing_does_not_block_the_event_loop() -> None:
    # OWASP's parameters cost tens of ms (SPEC §8): a hash on the loop would starve the ticker.
    hasher = PasswordHasher()
    ticks = 0
    hashing = True

    async def ticker() -> None:
        nonlocal ticks
        while hashing:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks_before = ticks
    await hasher.hash(STRONG_PASSWORD)
    hashing = False
    await task

    assert ticks - ticks_before >= 10, f"the loop ticked only {ticks - ticks_before} times"
