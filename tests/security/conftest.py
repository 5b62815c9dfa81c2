"""Accounts for the attack tests: a victim (``alice``) and an attacker (``mallory``), each a real
user with a real token pair obtained over HTTP from the password grant."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import Harness


@dataclass
class Account:
    id: int
    username: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def new_account(harness: Harness, username: str, **login_extra: str) -> Account:
    user_id = await harness.create_user(username)
    tokens = await harness.login(username, **login_extra)
    return Account(user_id, username, tokens["access_token"], tokens["refresh_token"])


@pytest.fixture
async def alice(harness: Harness) -> Account:
    return await new_account(harness, "alice")


@pytest.fixture
async def mallory(harness: Harness) -> Account:
    return await new_account(harness, "mallory")
