"""Policies: parsed once, their derived values and storage keys kept."""

from __future__ import annotations

import pytest

from bastion.ratelimit.policies import InvalidRateLimit, Policy, policy_for


def test_a_policy_says_its_quota_window_and_field() -> None:
    policy = Policy.parse("key", "30/minute")
    assert (policy.quota, policy.window_seconds) == (30, 60)
    assert policy.policy_field == '"key";q=30;w=60'


def test_a_request_borne_limit_is_one_policy_from_request_to_request() -> None:
    """An API key's own limit arrives with every request; a policy parsed afresh each time
    would lose the storage keys it remembers (and parse on every hit)."""
    first = policy_for("key", "7/second")
    key = first.storage_key("key-id-1")
    again = policy_for("key", "7/second")
    assert again is first
    assert again.storage_key("key-id-1") is key
    assert policy_for("key", "8/second") is not first


def test_an_unreadable_limit_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidRateLimit):
            policy_for("key", "lots")
