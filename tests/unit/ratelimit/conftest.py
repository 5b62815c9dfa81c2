"""One fake clock for the limiter and the storages: their windows open and end on it."""

from __future__ import annotations

import time

import pytest


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """``time.time`` itself, which the limiter, `limits`' storage and Bastion's all read."""
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake
