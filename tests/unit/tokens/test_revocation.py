"""MemoryRevocationList: revoked jti and refresh families refused until their horizon."""

from __future__ import annotations

from bastion.tokens.revocation import MemoryRevocationList


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_nothing_is_revoked_at_first() -> None:
    assert await MemoryRevocationList().is_revoked("jti", "family") is False


async def test_a_revoked_jti_is_refused_and_others_are_not() -> None:
    clock = FakeClock()
    revocations = MemoryRevocationList(clock)

    await revocations.revoke_token("jti-1", until=clock.now + 900)

    assert await revocations.is_revoked("jti-1", "family-a") is True
    assert await revocations.is_revoked("jti-2", "family-a") is False


async def test_a_revoked_family_refuses_every_token_carrying_its_sid() -> None:
    clock = FakeClock()
    revocations = MemoryRevocationList(clock)

    await revocations.revoke_families(["family-a", "family-b"], until=clock.now + 900)

    assert await revocations.is_revoked("any-jti", "family-a") is True
    assert await revocations.is_revoked("other-jti", "family-b") is True
    assert await revocations.is_revoked("any-jti", "family-c") is False


async def test_revoking_no_families_revokes_nothing() -> None:
    revocations = MemoryRevocationList(FakeClock())

    await revocations.revoke_families([], until=2_000_000.0)

    assert await revocations.is_revoked("jti", "") is False


async def test_entries_are_pruned_once_their_horizon_has_passed() -> None:
    clock = FakeClock()
    revocations = MemoryRevocationList(clock)
    await revocations.revoke_token("old-jti", until=clock.now + 10)
    await revocations.revoke_families(["old-family"], until=clock.now + 10)

    clock.now += 120
    await revocations.revoke_token("new-jti", until=clock.now + 900)

    assert await revocations.is_revoked("old-jti", "f") is False
    assert await revocations.is_revoked("j", "old-family") is False
    assert await revocations.is_revoked("new-jti", "f") is True


async def test_entries_are_kept_until_their_horizon() -> None:
    clock = FakeClock()
    revocations = MemoryRevocationList(clock)
    await revocations.revoke_token("jti", until=clock.now + 900)
    await revocations.revoke_families(["family"], until=clock.now + 900)

    clock.now += 899
    await revocations.revoke_token("trigger-prune", until=clock.now + 900)

    assert await revocations.is_revoked("jti", "f") is True
    assert await revocations.is_revoked("j", "family") is True


async def test_revoking_again_keeps_the_later_horizon() -> None:
    clock = FakeClock()
    revocations = MemoryRevocationList(clock)
    await revocations.revoke_token("jti", until=clock.now + 900)
    await revocations.revoke_token("jti", until=clock.now + 5)  # an earlier horizon must not win
    await revocations.revoke_families(["family"], until=clock.now + 900)
    await revocations.revoke_families(["family"], until=clock.now + 5)

    clock.now += 120
    await revocations.revoke_token("trigger-prune", until=clock.now + 900)

    assert await revocations.is_revoked("jti", "f") is True
    assert await revocations.is_revoked("j", "family") is True
