"""RefusalObserver (SPEC §6): every 401, 403 and CSRF failure leaves its event; only 429s, the
flood itself, are stored at most once per caller and route a second; every refusal is counted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import Request
from sqlalchemy import select

from bastion.audit.metrics import Metrics
from bastion.audit.observer import RefusalObserver
from bastion.audit.recorder import AuditRecorder
from bastion.errors import (
    AuthenticationError,
    BastionError,
    CSRFFailed,
    InvalidCredentials,
    PermissionDenied,
    RateLimited,
)
from bastion.lockout import AccountLocked
from bastion.storage.db import Database
from bastion.storage.models import AuditEventRow


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def observe(db: Database, metrics: Metrics) -> RefusalObserver:
    return RefusalObserver(AuditRecorder(db, metrics), metrics)


def refused_request(route: str = "/items", username: str | None = None) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": route,
        "headers": [],
        "route": SimpleNamespace(path=route),
        "state": {},
    }
    request = Request(scope)
    if username is not None:
        request.state.principal = SimpleNamespace(username=username)
    return request


async def stored(db: Database) -> list[tuple[str, str | None, str | None]]:
    async with db.transaction() as session:
        rows = (await session.execute(select(AuditEventRow).order_by(AuditEventRow.id))).scalars()
        return [(r.type, r.actor, r.subject) for r in rows]


def counted(metrics: Metrics, type: str) -> float:
    labels = {"type": type, "outcome": "denied"}
    return metrics.registry.get_sample_value("bastion_security_events_total", labels) or 0.0


@pytest.mark.parametrize(
    ("error", "username", "event", "actor"),
    [
        (AuthenticationError(), None, "unauthorized", None),
        (PermissionDenied(), "bob", "forbidden", "bob"),
        (CSRFFailed("bob"), None, "csrf_failed", "bob"),
    ],
)
async def test_each_refusal_of_a_burst_is_stored(
    observe: RefusalObserver,
    db: Database,
    metrics: Metrics,
    error: BastionError,
    username: str | None,
    event: str,
    actor: str | None,
) -> None:
    for _ in range(6):
        await observe(refused_request(username=username), error)
    assert await stored(db) == [(event, actor, "/items")] * 6
    assert counted(metrics, event) == 6


async def test_a_burst_of_429s_is_stored_once_but_counted_each_time(
    observe: RefusalObserver, db: Database, metrics: Metrics
) -> None:
    for _ in range(6):
        await observe(refused_request(username="bob"), RateLimited(10, policy="principal"))
    assert await stored(db) == [("rate_limited", "bob", "/items")]
    assert counted(metrics, "rate_limited") == 6
    assert metrics.registry.get_sample_value("bastion_rate_limited_total", {"policy": "principal"})


async def test_a_locked_account_leaves_no_second_event(
    observe: RefusalObserver, db: Database, metrics: Metrics
) -> None:
    """Its ``login_locked`` is recorded by the login itself; here it is only counted as a
    lockout refusal."""
    await observe(refused_request("/auth/token"), AccountLocked(60))
    assert await stored(db) == []
    labels = {"policy": "lockout"}
    assert metrics.registry.get_sample_value("bastion_rate_limited_total", labels) == 1


async def test_a_refused_login_is_not_counted_as_a_schemeless_authentication(
    observe: RefusalObserver, metrics: Metrics
) -> None:
    """A wrong password at ``POST /auth/session`` is counted with its login_failed event under
    ``session``; the 401 it becomes must not count a second time under ``none``."""
    await observe(refused_request("/auth/session"), InvalidCredentials())
    await observe(refused_request("/items"), AuthenticationError())
    registry = metrics.registry
    labels = {"scheme": "none", "outcome": "failure"}
    assert registry.get_sample_value("bastion_authentications_total", labels) == 1
