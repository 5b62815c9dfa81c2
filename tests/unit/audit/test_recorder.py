"""AuditRecorder (SPEC §6): an event is written in the transaction of the change it describes,
so it commits or vanishes with it; it is logged and counted only once committed; a flood of
429s is stored at most once per key per second but always counted; details are stored
redacted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from bastion.audit import recorder as recorder_module
from bastion.audit.events import EventType, Outcome, RequestContext, current_request
from bastion.audit.metrics import Metrics
from bastion.audit.recorder import AuditRecorder
from bastion.audit.redact import REDACTED
from bastion.storage.db import Database
from bastion.storage.models import AuditEventRow, User


class Boom(Exception):
    pass


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def recorder(db: Database, metrics: Metrics) -> AuditRecorder:
    return AuditRecorder(db, metrics)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """The event dicts logged meanwhile (structlog's own capture)."""
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def request_context() -> Iterator[RequestContext]:
    context = RequestContext(ip="203.0.113.9", user_agent="curl/8.5", request_id="req-42")
    token = current_request.set(context)
    yield context
    current_request.reset(token)


async def rows(db: Database) -> list[AuditEventRow]:
    async with db.transaction() as session:
        return list(
            (await session.execute(select(AuditEventRow).order_by(AuditEventRow.id))).scalars()
        )


def counted(metrics: Metrics, type: str, outcome: str = "success") -> float:
    labels = {"type": type, "outcome": outcome}
    return metrics.registry.get_sample_value("bastion_security_events_total", labels) or 0.0


def security_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "security_event"]


# ----------------------------------------------------------------------------- transactions


async def test_an_event_commits_with_its_change_and_is_then_logged_and_counted(
    db: Database, recorder: AuditRecorder, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    async with db.transaction() as session:
        session.add(User(username="zoe", password_hash="x", roles="user"))
        recorder.add(
            session,
            EventType.USER_CREATED,
            actor="root",
            subject="zoe",
            details={"roles": ["user"]},
        )
        await session.flush()
        # Nothing is told before the commit: the change could still be rolled back.
        assert security_logs(logs) == []
        assert counted(metrics, "user_created") == 0
    [row] = await rows(db)
    assert (row.type, row.actor, row.subject, row.outcome) == (
        "user_created",
        "root",
        "zoe",
        "success",
    )
    assert json.loads(row.details) == {"roles": ["user"]}
    assert counted(metrics, "user_created") == 1
    [line] = security_logs(logs)
    assert line["log_level"] == "info"
    assert (line["type"], line["actor"], line["subject"], line["outcome"]) == (
        "user_created",
        "root",
        "zoe",
        "success",
    )
    assert line["details"] == {"roles": ["user"]}


async def test_a_rolled_back_transaction_leaves_no_event_no_log_no_count(
    db: Database, recorder: AuditRecorder, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    async def change_then_fail() -> None:
        async with db.transaction() as session:
            session.add(User(username="zoe", password_hash="x", roles="user"))
            recorder.add(session, EventType.USER_CREATED, actor="root", subject="zoe")
            recorder.add(session, EventType.USER_CHANGED, actor="root", subject="zoe")
            await session.flush()
            raise Boom

    with pytest.raises(Boom):
        await change_then_fail()
    assert await rows(db) == []
    async with db.transaction() as session:
        assert (await session.execute(select(User))).first() is None
    assert security_logs(logs) == []
    assert counted(metrics, "user_created") == 0
    assert counted(metrics, "user_changed") == 0

    # The next transaction reports its own events only: nothing of the rolled-back one leaks.
    async with db.transaction() as session:
        recorder.add(session, EventType.LOGOUT, actor="zoe", subject="zoe")
    assert [r.type for r in await rows(db)] == ["logout"]
    assert [line["type"] for line in security_logs(logs)] == ["logout"]
    assert counted(metrics, "user_created") == 0


async def test_in_a_threaded_unit_of_work_an_event_commits_or_vanishes_with_it(
    db: Database, recorder: AuditRecorder, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    """The same promise through ``Database.run`` (a login's unit of work, run whole in a worker
    thread on SQLite): logged and counted after its commit, nothing after its rollback."""

    def change_then_fail(session: Any) -> None:
        session.add(User(username="zoe", password_hash="x", roles="user"))
        recorder.add(session, EventType.USER_CREATED, actor="root", subject="zoe")
        session.flush()
        raise Boom

    with pytest.raises(Boom):
        await db.run(change_then_fail)
    assert await rows(db) == []
    assert security_logs(logs) == []
    assert counted(metrics, "user_created") == 0

    await db.run(lambda session: recorder.add(session, EventType.LOGOUT, actor="zoe"))
    assert [r.type for r in await rows(db)] == ["logout"]
    assert [line["type"] for line in security_logs(logs)] == ["logout"]
    assert counted(metrics, "logout") == 1


async def test_several_events_of_one_transaction_commit_and_log_in_order(
    db: Database, recorder: AuditRecorder, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    types = [EventType.USER_CHANGED, EventType.USER_DISABLED, EventType.API_KEY_REVOKED]
    async with db.transaction() as session:
        for type in types:
            recorder.add(session, type, actor="root", subject="bob")
    assert [r.type for r in await rows(db)] == [t.value for t in types]
    assert [line["type"] for line in security_logs(logs)] == [t.value for t in types]
    for type in types:
        assert counted(metrics, type.value) == 1


async def test_record_writes_an_event_in_its_own_transaction(
    db: Database, recorder: AuditRecorder, metrics: Metrics, logs: list[dict[str, Any]]
) -> None:
    await recorder.record(
        EventType.LOGIN_FAILED,
        outcome=Outcome.FAILURE,
        subject="bob",
        details={"via": "token", "reason": "bad_credentials"},
    )
    [row] = await rows(db)
    assert (row.type, row.actor, row.subject, row.outcome) == (
        "login_failed",
        None,
        "bob",
        "failure",
    )
    assert counted(metrics, "login_failed", "failure") == 1
    assert len(security_logs(logs)) == 1


async def test_the_log_line_carries_the_user_agent_and_the_events_own_time(
    db: Database,
    recorder: AuditRecorder,
    logs: list[dict[str, Any]],
    request_context: RequestContext,
) -> None:
    """SPEC §6: each event has its time and user agent, in the log as in the table; the time
    is the event's, not the moment the line happened to be written after the commit."""
    await recorder.record(EventType.LOGOUT, actor="bob", subject="bob")
    [row] = await rows(db)
    [line] = security_logs(logs)
    assert line["user_agent"] == "curl/8.5"
    assert (line["ip"], line["request_id"]) == ("203.0.113.9", "req-42")
    assert line["time"].endswith("Z")
    logged = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert logged == row.time


async def test_committed_logins_are_counted_as_authentications_by_scheme(
    db: Database, recorder: AuditRecorder, metrics: Metrics
) -> None:
    """A password-grant or session login is an authentication (``bastion_authentications``);
    a wrong current password at a password change is not a login."""

    def authentications(scheme: str, outcome: str) -> float:
        labels = {"scheme": scheme, "outcome": outcome}
        return metrics.registry.get_sample_value("bastion_authentications_total", labels) or 0.0

    await recorder.record(EventType.LOGIN_SUCCEEDED, actor="bob", details={"via": "token"})
    await recorder.record(
        EventType.LOGIN_FAILED, outcome=Outcome.FAILURE, actor="bob", details={"via": "token"}
    )
    await recorder.record(EventType.LOGIN_SUCCEEDED, actor="bob", details={"via": "session"})
    await recorder.record(
        EventType.LOGIN_FAILED,
        outcome=Outcome.FAILURE,
        actor="bob",
        details={"via": "password_change"},
    )
    await recorder.record(
        EventType.LOGIN_LOCKED, outcome=Outcome.DENIED, actor="bob", details={"via": "token"}
    )
    assert authentications("password", "success") == 1
    assert authentications("password", "failure") == 1
    assert authentications("session", "success") == 1
    assert authentications("session", "failure") == 0


# ----------------------------------------------------------------------------- what a row holds


async def test_a_row_carries_the_request_context(
    db: Database, recorder: AuditRecorder, request_context: RequestContext
) -> None:
    await recorder.record(EventType.LOGOUT, actor="bob", subject="bob")
    [row] = await rows(db)
    assert (row.ip, row.user_agent, row.request_id) == ("203.0.113.9", "curl/8.5", "req-42")


async def test_without_a_request_the_context_fields_are_empty(
    db: Database, recorder: AuditRecorder
) -> None:
    await recorder.record(EventType.USER_CREATED, actor="cli", subject="bob")
    [row] = await rows(db)
    assert (row.ip, row.user_agent, row.request_id) == (None, None, None)


async def test_the_time_is_utc_now(db: Database, recorder: AuditRecorder) -> None:
    before = datetime.now(UTC)
    await recorder.record(EventType.LOGOUT, actor="bob", subject="bob")
    after = datetime.now(UTC)
    [row] = await rows(db)
    assert row.time.tzinfo is not None
    assert row.time.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= row.time <= after + timedelta(seconds=1)


async def test_long_fields_are_cut_to_their_columns(db: Database, recorder: AuditRecorder) -> None:
    token = current_request.set(
        RequestContext(ip="198.51.100.1", user_agent="u" * 1000, request_id="r")
    )
    try:
        await recorder.record(
            EventType.FORBIDDEN, actor="a" * 500, subject="s" * 500, outcome=Outcome.DENIED
        )
    finally:
        current_request.reset(token)
    [row] = await rows(db)
    assert row.actor == "a" * 64
    assert row.subject == "s" * 200
    assert row.user_agent == "u" * 256
    assert row.outcome == "denied"


async def test_integer_actors_and_subjects_are_stored_as_text(
    db: Database, recorder: AuditRecorder
) -> None:
    await recorder.record(EventType.TOKEN_REVOKED, actor=7, subject=42)
    [row] = await rows(db)
    assert (row.actor, row.subject) == ("7", "42")


async def test_details_are_redacted_before_they_are_stored_or_logged(
    db: Database, recorder: AuditRecorder, logs: list[dict[str, Any]]
) -> None:
    secret_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLXZhbHVl"
    await recorder.record(
        EventType.USER_CHANGED,
        actor="root",
        subject="bob",
        details={
            "password": "hunter2hunter2",
            "note": f"saw Bearer {secret_jwt}",
            "headers": [{"Authorization": "Basic Ym9iOnNlY3JldHNlY3JldA=="}],
            "when": datetime(2026, 1, 1, tzinfo=UTC),
            "sid": "family-1",
        },
    )
    [row] = await rows(db)
    stored = json.loads(row.details)
    assert stored["password"] == REDACTED
    assert stored["note"] == f"saw {REDACTED}"
    assert stored["headers"] == [{"Authorization": REDACTED}]
    assert stored["when"].startswith("2026-01-01")
    assert stored["sid"] == "family-1"
    logged = repr(security_logs(logs))
    for secret in ("hunter2hunter2", secret_jwt, "Ym9iOnNlY3JldHNlY3JldA=="):
        assert secret not in row.details
        assert secret not in logged


# ----------------------------------------------------------------------------- throttling


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The recorder's monotonic clock (its own ``time`` only), set by the test."""
    now = [1000.0]
    monkeypatch.setattr(recorder_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


async def test_429s_are_stored_once_per_key_per_second_but_all_counted(
    db: Database, recorder: AuditRecorder, metrics: Metrics, clock: list[float]
) -> None:
    for _ in range(5):
        await recorder.record_throttled(EventType.RATE_LIMITED, "ip|1.2.3.4", subject="1.2.3.4")
    assert len(await rows(db)) == 1
    assert counted(metrics, "rate_limited", "denied") == 5

    # Another key is another slot.
    await recorder.record_throttled(EventType.RATE_LIMITED, "ip|5.6.7.8", subject="5.6.7.8")
    assert len(await rows(db)) == 2

    clock[0] += 0.9
    await recorder.record_throttled(EventType.RATE_LIMITED, "ip|1.2.3.4", subject="1.2.3.4")
    assert len(await rows(db)) == 2
    clock[0] += 0.2  # more than a second after the stored one
    await recorder.record_throttled(EventType.RATE_LIMITED, "ip|1.2.3.4", subject="1.2.3.4")
    stored = await rows(db)
    assert len(stored) == 3
    assert [r.outcome for r in stored] == ["denied"] * 3
    assert counted(metrics, "rate_limited", "denied") == 8


async def test_the_throttle_table_stays_bounded(
    db: Database, recorder: AuditRecorder, clock: list[float]
) -> None:
    """A flood from many addresses must not grow memory without end."""
    for n in range(10_050):
        recorder._last_written[(EventType.RATE_LIMITED, f"ip{n}")] = clock[0]
    await recorder.record_throttled(EventType.RATE_LIMITED, "fresh", subject="/items")
    assert len(recorder._last_written) <= 10_001
