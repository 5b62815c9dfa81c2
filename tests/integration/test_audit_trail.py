"""The audit trail end to end (SPEC §6): a whole scripted session leaves exactly the expected
events, in order, with the right actors and request context; refused requests leave theirs;
a rolled-back change leaves none; the counters move with the events.

:func:`run_scripted_session` is shared with ``tests/security/test_no_secrets_in_logs.py``, which
searches the same session's logs, audit rows and ``/admin/audit`` output for every secret.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import func, select

from bastion.audit.events import EventType, Outcome
from bastion.audit.metrics import Metrics
from bastion.logs import configure_logging
from bastion.settings import BastionSettings
from bastion.storage.models import AuditEventRow, RefreshFamily, User
from bastion.storage.models import Session as SessionRow
from tests.conftest import Harness, make_settings, one_turn, open_harness
from tests.integration.helpers import RFC3339_UTC, assert_problem, bearer

ROOT_PASSWORD = "the admin's own passphrase, long enough"
ALICE_PASSWORD = "she keeps a very long passphrase"
WRONG_PASSWORD = "definitely not her passphrase"
DUPLICATE_PASSWORD = "a passphrase for a name that is taken"
USER_AGENT = "bastion-audit-script/1.0"
LOCKOUT_THRESHOLD = 3
EVENT_FIELDS = {
    "id",
    "time",
    "type",
    "actor",
    "subject",
    "ip",
    "user_agent",
    "request_id",
    "outcome",
    "details",
}
EVENT_TYPES = {t.value for t in EventType}
OUTCOMES = {o.value for o in Outcome}


# ----------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class Expected:
    """One event the script must leave. ``actors`` lists every acceptable actor."""

    type: str
    actors: tuple[str | None, ...]
    subject: str
    outcome: str

    def matches(self, row: dict[str, Any]) -> bool:
        return (
            row["type"] == self.type
            and row["actor"] in self.actors
            and row["subject"] == self.subject
            and row["outcome"] == self.outcome
        )


def ev(type: EventType, actor: str | None, subject: str, outcome: Outcome) -> Expected:
    return Expected(type.value, (actor,), subject, outcome.value)


@dataclass
class Step:
    method: str
    route: str
    """The route template, as the request metrics label it."""
    response: httpx.Response
    events: list[Expected]


@dataclass
class Script:
    """What the scripted session did: its steps, its secrets, and the ids it created."""

    harness: Harness
    steps: list[Step] = field(default_factory=list)
    setup_events: list[Expected] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    root_headers: dict[str, str] = field(default_factory=dict)
    alice_id: int = 0

    async def call(
        self,
        method: str,
        url: str,
        route: str,
        events: list[Expected],
        expect: int,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
        response = await self.harness.client.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expect, (method, url, response.status_code, response.text)
        self.steps.append(Step(method, route, response, events))
        return response

    def secret(self, name: str, value: str) -> str:
        self.secrets[name] = value
        if value.count(".") == 2:  # a JWT: its signature alone is a secret too
            self.secrets[name + " (signature)"] = value.rsplit(".", 1)[1]
        return value

    @property
    def expected(self) -> list[Expected]:
        return self.setup_events + [e for step in self.steps for e in step.events]


def script_settings(database_url: str, tmp_path: Path, **overrides: Any) -> BastionSettings:
    return make_settings(database_url, tmp_path, lockout_threshold=LOCKOUT_THRESHOLD, **overrides)


def token_form(username: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


async def run_scripted_session(harness: Harness) -> Script:
    """Register, fail to log in until locked, get unlocked, log in, refresh, replay a refresh
    token, create/use/revoke an API key, use a cookie session and fail CSRF, get refused an admin
    route, and finally be revoked by an admin. Every step checks its status."""
    s = Script(harness)
    s.secret("root password", ROOT_PASSWORD)
    s.secret("alice password", ALICE_PASSWORD)
    s.secret("wrong password", WRONG_PASSWORD)
    s.secret("duplicate password", DUPLICATE_PASSWORD)
    ok, fail, denied = Outcome.SUCCESS, Outcome.FAILURE, Outcome.DENIED
    T = EventType  # noqa: N806 - short, for the table of expected events

    await harness.create_user("root", ROOT_PASSWORD, admin=True)
    s.setup_events.append(ev(T.USER_CREATED, "root", "root", ok))
    response = await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.LOGIN_SUCCEEDED, "root", "root", ok)],
        200,
        data=token_form("root", ROOT_PASSWORD),
    )
    s.root_headers = bearer(s.secret("root access token", response.json()["access_token"]))
    s.secret("root refresh token", response.json()["refresh_token"])

    response = await s.call(
        "POST",
        "/auth/register",
        "/auth/register",
        [ev(T.USER_CREATED, "alice", "alice", ok)],
        201,
        json={"username": "alice", "password": ALICE_PASSWORD},
    )
    s.alice_id = response.json()["id"]

    # The actor of a refused login is the (normalised) name that was tried.
    for attempt in range(1, LOCKOUT_THRESHOLD + 1):
        events = [ev(T.LOGIN_FAILED, "alice", "alice", fail)]
        if attempt == LOCKOUT_THRESHOLD:
            events.append(ev(T.LOGIN_LOCKED, "alice", "alice", denied))
        await s.call(
            "POST",
            "/auth/token",
            "/auth/token",
            events,
            400,
            data=token_form("alice", WRONG_PASSWORD),
        )
    await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.LOGIN_LOCKED, "alice", "alice", denied)],
        429,
        data=token_form("ALICE", ALICE_PASSWORD),
    )
    # A change that fails (the name is taken) leaves no event.
    await s.call(
        "POST",
        "/admin/users",
        "/admin/users",
        [],
        409,
        json={"username": "alice", "password": DUPLICATE_PASSWORD},
        headers=s.root_headers,
    )
    await s.call(
        "POST",
        f"/admin/users/{s.alice_id}/unlock",
        "/admin/users/{user_id}/unlock",
        [ev(T.USER_CHANGED, "root", "alice", ok)],
        204,
        headers=s.root_headers,
    )

    # The right password with a scope she does not hold: refused, so no login_succeeded.
    await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.LOGIN_FAILED, "alice", "alice", fail)],
        400,
        data={**token_form("alice", ALICE_PASSWORD), "scope": "admin"},
    )
    first = await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.LOGIN_SUCCEEDED, "alice", "alice", ok)],
        200,
        data=token_form("alice", ALICE_PASSWORD),
    )
    s.secret("alice access token 1", first.json()["access_token"])
    refresh_1 = s.secret("alice refresh token 1", first.json()["refresh_token"])
    rotated = await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.TOKEN_REFRESHED, "alice", "alice", ok)],
        200,
        data={"grant_type": "refresh_token", "refresh_token": refresh_1},
    )
    s.secret("alice access token 1b", rotated.json()["access_token"])
    s.secret("alice refresh token 1b", rotated.json()["refresh_token"])
    await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.REFRESH_TOKEN_REUSED, "alice", "alice", denied)],
        400,
        data={"grant_type": "refresh_token", "refresh_token": refresh_1},
    )

    second = await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.LOGIN_SUCCEEDED, "alice", "alice", ok)],
        200,
        data=token_form("alice", ALICE_PASSWORD),
    )
    alice = bearer(s.secret("alice access token 2", second.json()["access_token"]))
    s.secret("alice refresh token 2", second.json()["refresh_token"])

    # RFC 7009 revocation needs no credential: the actor is the owner of the token revoked.
    third = await s.call(
        "POST",
        "/auth/token",
        "/auth/token",
        [ev(T.LOGIN_SUCCEEDED, "alice", "alice", ok)],
        200,
        data=token_form("alice", ALICE_PASSWORD),
    )
    for kind in ("access_token", "refresh_token"):
        await s.call(
            "POST",
            "/auth/revoke",
            "/auth/revoke",
            [ev(T.TOKEN_REVOKED, "alice", "alice", ok)],
            200,
            data={"token": s.secret(f"alice {kind} 3", third.json()[kind])},
        )

    # An API key: created, used, revoked, refused.
    issued = await harness.client.post(
        "/auth/keys", json={"name": "ci"}, headers={**alice, "User-Agent": USER_AGENT}
    )
    assert issued.status_code == 201, issued.text
    s.steps.append(
        Step(
            "POST",
            "/auth/keys",
            issued,
            [ev(T.API_KEY_CREATED, "alice", issued.json()["prefix"], ok)],
        )
    )
    key = s.secret("api key", issued.json()["key"])
    prefix, key_id = issued.json()["prefix"], issued.json()["id"]
    await s.call("GET", "/items", "/items", [], 200, headers={"X-API-Key": key})
    await s.call(
        "DELETE",
        f"/auth/keys/{key_id}",
        "/auth/keys/{key_id}",
        [ev(T.API_KEY_REVOKED, "alice", prefix, ok)],
        204,
        headers=alice,
    )
    await s.call(
        "GET",
        "/items",
        "/items",
        [ev(T.UNAUTHORIZED, None, "/items", denied)],
        401,
        headers={"X-API-Key": key},
    )

    # A cookie session: used, then an unsafe request without its CSRF token.
    session = await s.call(
        "POST",
        "/auth/session",
        "/auth/session",
        [ev(T.LOGIN_SUCCEEDED, "alice", "alice", ok), ev(T.SESSION_CREATED, "alice", "alice", ok)],
        200,
        json={"username": "alice", "password": ALICE_PASSWORD},
    )
    harness.client.cookies.clear()
    cookie_value = s.secret("session cookie", session.cookies["bastion_session"])
    csrf = s.secret("csrf token", session.json()["csrf_token"])
    assert session.cookies["bastion_csrf"] == csrf
    cookies = {"Cookie": f"bastion_session={cookie_value}; bastion_csrf={csrf}"}
    await s.call("GET", "/items", "/items", [], 200, headers=cookies)
    await s.call(
        "POST",
        "/items",
        "/items",
        [],
        201,
        json={"name": "made by the browser"},
        headers={**cookies, "X-CSRF-Token": csrf},
    )
    # Who the actor of a CSRF failure is, SPEC §6 does not say: the session's user or nobody.
    csrf_failed = Expected(T.CSRF_FAILED.value, (None, "alice"), "/items", denied.value)
    await s.call(
        "POST",
        "/items",
        "/items",
        [csrf_failed],
        403,
        json={"name": "forged"},
        headers=cookies,
    )

    await s.call(
        "GET",
        "/admin/users",
        "/admin/users",
        [ev(T.FORBIDDEN, "alice", "/admin/users", denied)],
        403,
        headers=alice,
    )
    await s.call(
        "POST",
        f"/admin/users/{s.alice_id}/revoke",
        "/admin/users/{user_id}/revoke",
        [ev(T.USER_REVOKED, "root", "alice", ok)],
        204,
        headers=s.root_headers,
    )
    await s.call(
        "GET",
        "/auth/me",
        "/auth/me",
        [ev(T.UNAUTHORIZED, None, "/auth/me", denied)],
        401,
        headers=alice,
    )
    await s.call(
        "GET",
        "/secure-data",
        "/secure-data",
        [ev(T.UNAUTHORIZED, None, "/secure-data", denied)],
        401,
        headers=cookies,
    )
    return s


async def stored_events(harness: Harness) -> list[dict[str, Any]]:
    """Every audit row, oldest first, as plain dicts (details parsed)."""
    async with harness.bastion.db.transaction() as session:
        rows = (await session.execute(select(AuditEventRow).order_by(AuditEventRow.id))).scalars()
        return [
            {
                "id": r.id,
                "time": r.time,
                "type": r.type,
                "actor": r.actor,
                "subject": r.subject,
                "ip": r.ip,
                "user_agent": r.user_agent,
                "request_id": r.request_id,
                "outcome": r.outcome,
                "details": json.loads(r.details),
            }
            for r in rows
        ]


async def admin_audit(harness: Harness, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every event through ``GET /admin/audit``, newest first, following the cursor."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await harness.client.get("/admin/audit", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def describe(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["type"], r["actor"], r["subject"], r["outcome"]) for r in rows]


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def event_counts(metrics: Metrics) -> dict[tuple[str, str], float]:
    return {
        (t, o): counter(metrics, "bastion_security_events_total", type=t, outcome=o)
        for t in EVENT_TYPES
        for o in OUTCOMES
    }


@pytest.fixture
async def harness(database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(script_settings(database_url, tmp_path)) as running:
        yield running


class JsonLogs:
    """Bastion's own logging (``configure_logging`` with JSON lines, its processors and
    redaction) writing to a buffer instead of stderr, plus whatever else the test printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.buffer = io.StringIO()
        self._capsys = capsys
        self._other = ""

    def text(self) -> str:
        """Everything logged or printed so far."""
        captured = self._capsys.readouterr()
        self._other += captured.out + captured.err
        return self.buffer.getvalue() + self._other

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line Bastion logged so far."""
        return [json.loads(line) for line in self.buffer.getvalue().splitlines() if line]


@contextmanager
def json_logging(capsys: pytest.CaptureFixture[str], **settings: Any) -> Iterator[JsonLogs]:
    """``configure_logging`` as production runs it (JSON), for the block only."""
    saved = structlog.get_config()
    saved_handlers = logging.getLogger().handlers[:]
    logs = JsonLogs(capsys)
    configure_logging(BastionSettings(log_format="json", **settings))
    # The renderer's output goes to our buffer; loggers must not stay cached past the block.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(logs.buffer), cache_logger_on_first_use=False
    )
    try:
        yield logs
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = saved_handlers


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[JsonLogs]:
    with json_logging(capsys) as logs:
        yield logs


# ----------------------------------------------------------------------------- the session


async def test_scripted_session_leaves_the_expected_events_in_order(harness: Harness) -> None:
    script = await run_scripted_session(harness)
    rows = await stored_events(harness)
    expected = script.expected
    assert [r["type"] for r in rows] == [e.type for e in expected], describe(rows)
    for row, want in zip(rows, expected, strict=True):
        assert want.matches(row), (row, want)
    by_type = {r["type"]: r for r in rows}

    def details_of(type: EventType, key: str) -> list[Any]:
        return [r["details"].get(key) for r in rows if r["type"] == type.value]

    assert details_of(EventType.LOGIN_FAILED, "reason") == ["bad_credentials"] * 3 + [
        "invalid_scope"
    ]
    assert details_of(EventType.TOKEN_REVOKED, "token_type") == ["access_token", "refresh_token"]
    assert by_type["user_revoked"]["details"] == {
        "refresh_families_ended": 1,
        "sessions_ended": 1,
        "api_keys_revoked": 0,
    }
    assert by_type["refresh_token_reused"]["details"]["family_revoked"] is True
    session_logins = [
        r for r in rows if r["type"] == "login_succeeded" and r["details"].get("via") == "session"
    ]
    assert len(session_logins) == 1


async def test_every_event_is_typed_and_complete(harness: Harness) -> None:
    script = await run_scripted_session(harness)
    events = await admin_audit(harness, script.root_headers)
    assert len(events) == len(script.expected)
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    for event in events:
        assert set(event) == EVENT_FIELDS, event
        assert isinstance(event["id"], int)
        assert re.match(RFC3339_UTC, event["time"]), event["time"]
        assert event["type"] in EVENT_TYPES
        assert event["outcome"] in OUTCOMES
        assert isinstance(event["details"], dict)


async def test_each_event_carries_the_request_context_of_its_response(harness: Harness) -> None:
    """SPEC §6: client IP, user agent and request id; the request id is the response's
    ``X-Request-ID``, so an operator can join the audit trail, the logs and a client's report."""
    script = await run_scripted_session(harness)
    rows = await stored_events(harness)
    http_rows = rows[len(script.setup_events) :]
    wanted = [
        (step.response.headers["x-request-id"], step.method, step.route)
        for step in script.steps
        for _ in step.events
    ]
    assert len(http_rows) == len(wanted)
    mismatches = [
        (row["type"], row["request_id"], row["ip"], row["user_agent"], method, route, request_id)
        for row, (request_id, method, route) in zip(http_rows, wanted, strict=True)
        if (row["request_id"], row["ip"], row["user_agent"])
        != (request_id, "127.0.0.1", USER_AGENT)
    ]
    assert not mismatches, mismatches


async def test_security_event_counters_move_with_the_events(harness: Harness) -> None:
    before = event_counts(harness.bastion.metrics)
    script = await run_scripted_session(harness)
    after = event_counts(harness.bastion.metrics)
    moved = {key: after[key] - before[key] for key in after if after[key] != before[key]}
    assert moved == dict(Counter((e.type, e.outcome) for e in script.expected))


async def test_request_counters_count_every_request_of_the_session(harness: Harness) -> None:
    metrics = harness.bastion.metrics
    script = await run_scripted_session(harness)
    await one_turn()
    wanted = Counter((s.method, s.route, str(s.response.status_code)) for s in script.steps)
    got = {
        labels: counter(
            metrics, "bastion_requests_total", method=labels[0], route=labels[1], status=labels[2]
        )
        for labels in wanted
    }
    assert got == dict(wanted)


async def test_every_event_is_logged_once_as_json_after_it_is_stored(
    harness: Harness, json_logs: JsonLogs
) -> None:
    """SPEC §6: events go to the database *and* to structured JSON logs."""
    await run_scripted_session(harness)
    lines = json_logs.lines()
    logged = [line for line in lines if line.get("event") == "security_event"]
    rows = await stored_events(harness)
    assert [(e["type"], e["outcome"], e["subject"]) for e in logged] == [
        (r["type"], r["outcome"], r["subject"]) for r in rows
    ]
    for line in logged:
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")


# ----------------------------------------------------------------------------- rollbacks


async def test_an_event_added_to_a_rolled_back_transaction_leaves_nothing(
    harness: Harness, json_logs: JsonLogs
) -> None:
    before = event_counts(harness.bastion.metrics)

    class Boom(Exception):
        pass

    async def add_then_fail() -> None:
        async with harness.bastion.db.transaction() as session:
            harness.bastion.audit.add(
                session, EventType.USER_CHANGED, actor="root", subject="ghost", details={"x": 1}
            )
            await session.flush()  # the row reached the database, inside the transaction
            raise Boom

    with pytest.raises(Boom):
        await add_then_fail()

    assert await stored_events(harness) == []
    assert event_counts(harness.bastion.metrics) == before
    assert not [line for line in json_logs.lines() if line.get("event") == "security_event"]

    # The recorder still works afterwards, and a committed event is logged and counted.
    async with harness.bastion.db.transaction() as session:
        harness.bastion.audit.add(session, EventType.USER_CHANGED, actor="root", subject="real")
    assert [r["subject"] for r in await stored_events(harness)] == ["real"]
    assert counter(
        harness.bastion.metrics,
        "bastion_security_events_total",
        type="user_changed",
        outcome="success",
    ) == (before[("user_changed", "success")] + 1)


async def test_a_refused_creation_leaves_no_user_created_event(harness: Harness) -> None:
    admin = await harness.user_with_token("root", admin=True)
    created = await harness.client.post(
        "/admin/users", json={"username": "carol", "password": ALICE_PASSWORD}, headers=admin
    )
    assert created.status_code == 201, created.text
    before = await stored_events(harness)
    counted = event_counts(harness.bastion.metrics)

    again = await harness.client.post(
        "/admin/users", json={"username": "Carol", "password": DUPLICATE_PASSWORD}, headers=admin
    )
    assert_problem(again, 409)
    signup = await harness.client.post(
        "/auth/register", json={"username": "carol", "password": DUPLICATE_PASSWORD}
    )
    assert_problem(signup, 409)
    bad_role = await harness.client.post(
        "/admin/users",
        json={"username": "dave", "password": ALICE_PASSWORD, "roles": ["wizard"]},
        headers=admin,
    )
    assert_problem(bad_role, 422)

    assert await stored_events(harness) == before
    assert event_counts(harness.bastion.metrics) == counted
    async with harness.bastion.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 2


async def test_a_change_failing_midway_rolls_back_its_event_too(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH roles + disabled: the roles event is added, then ending the credentials fails. The
    whole transaction, event included, must vanish; nothing is logged or counted."""
    admin = await harness.user_with_token("root", admin=True)
    bob_id = await harness.create_user("bob")
    before = await stored_events(harness)
    counted = event_counts(harness.bastion.metrics)

    async def broken(*_args: Any, **_kwargs: Any) -> list[str]:
        raise RuntimeError("injected failure after the event was added")

    monkeypatch.setattr(harness.bastion.api_keys, "revoke_user_keys", broken)
    response = await harness.client.patch(
        f"/admin/users/{bob_id}", json={"roles": ["admin", "user"], "disabled": True}, headers=admin
    )
    assert response.status_code == 500
    assert "injected" not in response.text

    assert await stored_events(harness) == before
    assert event_counts(harness.bastion.metrics) == counted
    async with harness.bastion.db.transaction() as session:
        bob = await session.get(User, bob_id)
        assert bob is not None
        assert bob.role_set == {"user"}
        assert not bob.disabled


# ----------------------------------------------------------------------------- refusals


async def events_of(harness: Harness, type: EventType) -> list[dict[str, Any]]:
    return [r for r in await stored_events(harness) if r["type"] == type.value]


async def test_a_wrong_password_leaves_login_failed(harness: Harness) -> None:
    await harness.create_user("erin")
    for via in ("token", "session"):
        if via == "token":
            response = await harness.client.post(
                "/auth/token", data=token_form("erin", WRONG_PASSWORD)
            )
            assert response.status_code == 400
        else:
            response = await harness.client.post(
                "/auth/session", json={"username": "erin", "password": WRONG_PASSWORD}
            )
            assert_problem(response, 401)
    unknown = await harness.client.post("/auth/token", data=token_form("Nobody", WRONG_PASSWORD))
    assert unknown.status_code == 400
    failed = await events_of(harness, EventType.LOGIN_FAILED)
    assert [(e["actor"], e["subject"], e["details"]["via"], e["outcome"]) for e in failed] == [
        ("erin", "erin", "token", "failure"),
        ("erin", "erin", "session", "failure"),
        ("nobody", "nobody", "token", "failure"),
    ]


async def test_a_right_password_with_a_scope_not_held_leaves_no_login_succeeded(
    harness: Harness,
) -> None:
    """SPEC §6: the event commits with the change it describes. The grant answers
    invalid_scope, so no refresh family is created, and no login_succeeded may say otherwise."""
    await harness.create_user("erin", ALICE_PASSWORD)
    response = await harness.client.post(
        "/auth/token", data={**token_form("erin", ALICE_PASSWORD), "scope": "admin"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert await events_of(harness, EventType.LOGIN_SUCCEEDED) == []
    [failed] = await events_of(harness, EventType.LOGIN_FAILED)
    assert (failed["actor"], failed["subject"], failed["outcome"]) == ("erin", "erin", "failure")
    assert failed["details"] == {"via": "token", "reason": "invalid_scope"}


async def test_a_login_whose_refresh_family_fails_leaves_no_login_succeeded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The family, its token and login_succeeded are added, then the unit of work fails: they
    are one transaction, so none of them stays (SPEC §6)."""
    await harness.create_user("erin", ALICE_PASSWORD)
    accounts = harness.bastion.accounts
    real_complete = accounts.complete_login

    def complete_then_fail(conn: Any, login: Any) -> None:
        real_complete(conn, login)  # login_succeeded is written in the transaction now
        raise RuntimeError("injected failure after the whole login was written")

    monkeypatch.setattr(accounts, "complete_login", complete_then_fail)
    response = await harness.client.post("/auth/token", data=token_form("erin", ALICE_PASSWORD))
    assert response.status_code == 500
    assert await events_of(harness, EventType.LOGIN_SUCCEEDED) == []
    async with harness.bastion.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(RefreshFamily)) == 0


async def test_a_session_login_whose_session_fails_leaves_no_login_succeeded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session row, login_succeeded and session_created are one transaction: a failure
    after the last of them is added leaves none (SPEC §6)."""
    await harness.create_user("erin", ALICE_PASSWORD)
    real_add = harness.bastion.audit.add

    def add_then_fail(session: Any, type: EventType, **kwargs: Any) -> None:
        real_add(session, type, **kwargs)
        if type is EventType.SESSION_CREATED:
            raise RuntimeError("injected failure after the session's events were added")

    monkeypatch.setattr(harness.bastion.audit, "add", add_then_fail)
    response = await harness.client.post(
        "/auth/session", json={"username": "erin", "password": ALICE_PASSWORD}
    )
    assert response.status_code == 500
    assert [r["type"] for r in await stored_events(harness)] == ["user_created"]
    async with harness.bastion.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(SessionRow)) == 0


async def test_a_lock_and_its_events_commit_together(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §6: the failure that locks, its login_failed and its login_locked are one change;
    when writing the lock fails, none of them is left (and the next try is not locked)."""
    async with open_harness(script_settings(database_url, tmp_path)) as harness:
        await harness.create_user("erin", ALICE_PASSWORD)
        for _ in range(LOCKOUT_THRESHOLD - 1):
            wrong = await harness.client.post(
                "/auth/token", data=token_form("erin", WRONG_PASSWORD)
            )
            assert wrong.status_code == 400
        lockout = harness.bastion.lockout
        real_count = lockout.count_failure

        def count_then_fail(session: Any, username: str) -> bool:
            assert real_count(session, username)  # this one locks...
            raise RuntimeError("injected failure after the lock was written")

        monkeypatch.setattr(lockout, "count_failure", count_then_fail)
        broken = await harness.client.post("/auth/token", data=token_form("erin", WRONG_PASSWORD))
        assert broken.status_code == 500
        assert len(await events_of(harness, EventType.LOGIN_FAILED)) == LOCKOUT_THRESHOLD - 1
        assert await events_of(harness, EventType.LOGIN_LOCKED) == []
        monkeypatch.undo()

        locking = await harness.client.post("/auth/token", data=token_form("erin", WRONG_PASSWORD))
        assert locking.status_code == 400
        [locked] = await events_of(harness, EventType.LOGIN_LOCKED)
        assert (locked["actor"], locked["subject"]) == ("erin", "erin")
        refused = await harness.client.post("/auth/token", data=token_form("erin", ALICE_PASSWORD))
        assert refused.status_code == 429


async def test_every_refused_request_leaves_its_event_and_is_counted(
    harness: Harness,
) -> None:
    """SPEC §6: every 401 and 403 is in the database, a burst of them included (the per-IP
    limit bounds them); none is dropped for having come within a second of another."""
    metrics = harness.bastion.metrics
    user = await harness.user_with_token("frank")
    before = event_counts(metrics)
    for _ in range(5):
        assert (await harness.client.get("/items")).status_code == 401
    for _ in range(4):
        assert (await harness.client.get("/admin/audit", headers=user)).status_code == 403
    after = event_counts(metrics)

    unauthorized = await events_of(harness, EventType.UNAUTHORIZED)
    forbidden = await events_of(harness, EventType.FORBIDDEN)
    assert len(unauthorized) == 5
    assert len(forbidden) == 4
    assert unauthorized[0]["subject"] == "/items"
    assert unauthorized[0]["outcome"] == "denied"
    assert forbidden[0]["actor"] == "frank"
    assert forbidden[0]["subject"] == "/admin/audit"
    assert after[("unauthorized", "denied")] - before[("unauthorized", "denied")] == 5
    assert after[("forbidden", "denied")] - before[("forbidden", "denied")] == 4


async def test_csrf_failures_leave_events(harness: Harness) -> None:
    await harness.create_user("grace")
    login = await harness.client.post(
        "/auth/session", json={"username": "grace", "password": "correct horse battery staple"}
    )
    assert login.status_code == 200, login.text
    harness.client.cookies.clear()
    token = login.cookies["bastion_session"]
    headers = {"Cookie": f"bastion_session={token}"}
    before = counter(
        harness.bastion.metrics,
        "bastion_security_events_total",
        type="csrf_failed",
        outcome="denied",
    )
    for csrf in (None, "0" * 64):
        extra = {} if csrf is None else {"X-CSRF-Token": csrf}
        response = await harness.client.post(
            "/items", json={"name": "x"}, headers={**headers, **extra}
        )
        assert_problem(response, 403)
    rows = await events_of(harness, EventType.CSRF_FAILED)
    assert len(rows) == 2
    assert {r["actor"] for r in rows} == {"grace"}
    assert rows[0]["subject"] == "/items"
    assert rows[0]["details"]["method"] == "POST"
    after = counter(
        harness.bastion.metrics,
        "bastion_security_events_total",
        type="csrf_failed",
        outcome="denied",
    )
    assert after - before == 2


async def test_rate_limited_requests_leave_events_and_are_counted(
    database_url: str, tmp_path: Path
) -> None:
    settings = script_settings(database_url, tmp_path, ratelimit_login="2/minute")
    async with open_harness(settings) as harness:
        metrics = harness.bastion.metrics
        statuses = [
            (
                await harness.client.post("/auth/token", data=token_form("x" * 5, WRONG_PASSWORD))
            ).status_code
            for _ in range(5)
        ]
        assert statuses == [400, 400, 429, 429, 429]
        rows = await events_of(harness, EventType.RATE_LIMITED)
        assert 1 <= len(rows) <= 3
        assert rows[0]["subject"] == "/auth/token"
        assert rows[0]["outcome"] == "denied"
        assert (
            counter(metrics, "bastion_security_events_total", type="rate_limited", outcome="denied")
            == 3
        )
        assert counter(metrics, "bastion_rate_limited_total", policy="login") == 3


async def test_the_per_ip_limit_leaves_events_and_is_counted(
    database_url: str, tmp_path: Path
) -> None:
    settings = script_settings(database_url, tmp_path, ratelimit_ip="3/minute")
    async with open_harness(settings) as harness:
        metrics = harness.bastion.metrics
        statuses = [(await harness.client.get("/public")).status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 429, 429, 429]
        rows = await events_of(harness, EventType.RATE_LIMITED)
        assert 1 <= len(rows) <= 3
        assert rows[0]["details"] == {"policy": "ip", "path": "/public"}
        assert counter(metrics, "bastion_rate_limited_total", policy="ip") == 3
        assert (
            counter(metrics, "bastion_security_events_total", type="rate_limited", outcome="denied")
            == 3
        )


async def test_a_flood_of_429s_is_stored_once_per_second_but_all_counted(
    database_url: str, tmp_path: Path
) -> None:
    """Only ``rate_limited`` is throttled: the 429s of one caller and route within a second
    leave one row, while the 401s of the same burst each leave theirs."""
    settings = script_settings(database_url, tmp_path, ratelimit_ip="3/minute")
    async with open_harness(settings) as harness:
        metrics = harness.bastion.metrics
        statuses = [(await harness.client.get("/items")).status_code for _ in range(8)]
        assert statuses == [401] * 3 + [429] * 5
        assert len(await events_of(harness, EventType.UNAUTHORIZED)) == 3
        assert len(await events_of(harness, EventType.RATE_LIMITED)) < 5
        assert (
            counter(metrics, "bastion_security_events_total", type="rate_limited", outcome="denied")
            == 5
        )
