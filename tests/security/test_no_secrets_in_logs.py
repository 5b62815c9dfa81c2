"""No secret anywhere an operator or an attacker with log access could read it (SPEC §6, §3):
passwords, access and refresh tokens, API keys, session cookies and CSRF tokens must not appear
in the logs (as production writes them: JSON), in the audit table, or in ``/admin`` output.

Each check searches for the *literal* secrets the test itself used, so that no redaction rule
can be satisfied by accident.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from bastion.audit.events import EventType
from bastion.storage.models import AuditEventRow, Base
from tests.conftest import Harness, one_turn, open_harness
from tests.integration.helpers import bearer
from tests.integration.test_audit_trail import (
    ALICE_PASSWORD,
    Script,
    json_logging,
    run_scripted_session,
    script_settings,
)

SECRET_QUERY = ("password", "token", "refresh_token", "access_token", "api_key", "client_secret")


@pytest.fixture
async def harness(database_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(script_settings(database_url, tmp_path)) as running:
        yield running


def leaks(secrets: dict[str, str], places: dict[str, str]) -> list[str]:
    """``"<secret name> in <place>"`` for every secret found in a place."""
    return [
        f"{name} in {place}"
        for name, secret in secrets.items()
        for place, haystack in places.items()
        if secret in haystack
    ]


async def table_text(harness: Harness, table: str) -> str:
    async with harness.bastion.db.transaction() as session:
        rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
    return "\n".join(" | ".join(str(value) for value in row) for row in rows)


async def admin_output(harness: Harness, script: Script) -> str:
    """Every page of every admin list, as the client received it."""
    pages: list[str] = []
    for path in ("/admin/audit", "/admin/users", "/admin/keys"):
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = await harness.client.get(path, params=params, headers=script.root_headers)
            assert response.status_code == 200, response.text
            pages.append(response.text)
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
    return "\n".join(pages)


async def test_the_scripted_session_leaks_no_secret(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    with json_logging(capsys) as logs:
        script = await run_scripted_session(harness)
        audit_rows = await table_text(harness, "audit_events")
        admin = await admin_output(harness, script)
        logged = logs.text()
        lines = logs.lines()

    # The places searched are not empty: every stored event was also logged.
    assert len(script.secrets) >= 15
    assert len([line for line in lines if line.get("event") == "security_event"]) == len(
        script.expected
    )
    assert audit_rows.count("\n") + 1 == len(script.expected)
    assert '"login_failed"' in admin
    found = leaks(script.secrets, {"logs": logged, "audit table": audit_rows, "/admin": admin})
    assert not found, found


async def test_no_secret_is_stored_in_clear_in_any_table(harness: Harness) -> None:
    """Passwords, refresh tokens, keys and sessions are stored hashed; nothing else holds them."""
    script = await run_scripted_session(harness)
    tables = {
        f"table {table.name}": await table_text(harness, table.name)
        for table in Base.metadata.sorted_tables
    }
    found = leaks(script.secrets, tables)
    assert not found, found


# ----------------------------------------------------------------------------- request logs


async def new_user_with_key(harness: Harness) -> tuple[dict[str, str], str]:
    await harness.create_user("ivan", ALICE_PASSWORD)
    tokens = await harness.login("ivan", ALICE_PASSWORD)
    headers = bearer(tokens["access_token"])
    issued = await harness.client.post("/auth/keys", json={"name": "hook"}, headers=headers)
    assert issued.status_code == 201, issued.text
    return headers, issued.json()["key"]


def secret_query(key: str, jwt: str) -> dict[str, str]:
    values = {
        "password": ALICE_PASSWORD,
        "token": jwt,
        "refresh_token": "refresh-" + "r" * 40,
        "access_token": jwt,
        "api_key": key,
        "client_secret": "client-secret-" + "c" * 30,
    }
    assert set(values) == set(SECRET_QUERY)
    return values


async def test_secret_query_parameters_never_reach_the_logs(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    headers, key = await new_user_with_key(harness)
    jwt = headers["Authorization"].removeprefix("Bearer ")
    query = secret_query(key, jwt)
    with json_logging(capsys) as logs:
        for path in ("/items", "/auth/token", "/no-such-route", "/public"):
            await harness.client.get(path, params=query, headers=headers)
        refused = await harness.client.post(
            "/auth/token",
            params={"password": ALICE_PASSWORD},
            data={"grant_type": "password", "username": "ivan", "password": ALICE_PASSWORD},
        )
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_request"
        logged = logs.text()
    found = leaks({f"?{name}=": value for name, value in query.items()}, {"logs": logged})
    assert not found, found


async def test_every_request_is_logged_by_route_template_without_its_query(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPEC §3 and §6: a structured line per request, naming the route template, never the raw
    path or query string (so ids and ``?api_key=`` values cannot reach the log), with the
    request id the client saw."""
    headers, key = await new_user_with_key(harness)
    query = secret_query(key, headers["Authorization"].removeprefix("Bearer "))
    with json_logging(capsys) as logs:
        responses: list[tuple[str, httpx.Response]] = []
        for path, route in (("/items", "/items"), ("/items/12345", "/items/{item_id}")):
            response = await harness.client.get(path, params=query, headers=headers)
            responses.append((route, response))
        await one_turn()
        logged = [line for line in logs.lines() if line.get("event") == "request"]
    by_id = {line.get("request_id"): line for line in logged}
    for route, response in responses:
        line = by_id.get(response.headers["x-request-id"])
        assert line is not None, f"no request log line for {route}: {logged}"
        assert line["route"] == route
        assert line["status"] == response.status_code
        assert line["method"] == "GET"
        assert "12345" not in str(line)


# ----------------------------------------------------------------------------- credentials


async def test_credentials_sent_in_headers_never_reach_the_logs(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Good, bad and malformed credentials of every scheme, on routes that accept them and on
    routes that do not; none of them may be logged."""
    headers, key = await new_user_with_key(harness)
    jwt = headers["Authorization"].removeprefix("Bearer ")
    session = await harness.client.post(
        "/auth/session", json={"username": "ivan", "password": ALICE_PASSWORD}
    )
    assert session.status_code == 200
    harness.client.cookies.clear()
    cookie = session.cookies["bastion_session"]
    csrf = session.json()["csrf_token"]
    secrets = {
        "jwt": jwt,
        "jwt signature": jwt.rsplit(".", 1)[1],
        "api key": key,
        "session cookie": cookie,
        "csrf token": csrf,
        "basic credentials": "aXZhbjpodW50ZXIy",
        "password": ALICE_PASSWORD,
    }
    cookies = f"bastion_session={cookie}; bastion_csrf={csrf}"
    attempts: list[dict[str, str]] = [
        headers,
        {"Authorization": f"Bearer {jwt}x"},
        {"Authorization": "Basic aXZhbjpodW50ZXIy"},
        {"X-API-Key": key},
        {"X-API-Key": key[:-1] + ("A" if key[-1] != "A" else "B")},
        {**headers, "X-API-Key": key},
        {"Cookie": cookies},
        {"Cookie": cookies, "X-CSRF-Token": csrf},
        {"Cookie": cookies, "X-CSRF-Token": csrf + "0"},
    ]
    with json_logging(capsys) as logs:
        for attempt in attempts:
            for method, path in (("GET", "/items"), ("POST", "/items"), ("GET", "/metrics")):
                await harness.client.request(method, path, json={"name": "n"}, headers=attempt)
        logged = logs.text()
    found = leaks(secrets, {"logs": logged})
    assert not found, found


async def test_an_unexpected_failure_does_not_log_the_credentials_it_was_handling(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here, an injected failure) while a password, a token, a key or a session is being
    checked becomes a bare 500 and a logged traceback. In JSON logs the traceback must not carry
    the values of the local variables of its frames: they hold the very credentials."""
    headers, key = await new_user_with_key(harness)
    jwt = headers["Authorization"].removeprefix("Bearer ")
    session = await harness.client.post(
        "/auth/session", json={"username": "ivan", "password": ALICE_PASSWORD}
    )
    harness.client.cookies.clear()
    cookie = session.cookies["bastion_session"]

    class InjectedBug(Exception):
        pass

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise InjectedBug

    bastion = harness.bastion
    monkeypatch.setattr(bastion.hasher, "verify", broken)
    monkeypatch.setattr(bastion.api_keys, "authenticate", broken)
    monkeypatch.setattr(bastion.sessions, "authenticate", broken)
    monkeypatch.setattr(bastion.revocations, "is_revoked", broken)
    with json_logging(capsys) as logs:
        form = {"grant_type": "password", "username": "ivan", "password": ALICE_PASSWORD}
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/auth/token", {"data": form}),
            ("POST", "/auth/session", {"json": {"username": "ivan", "password": ALICE_PASSWORD}}),
            ("GET", "/items", {"headers": headers}),
            ("GET", "/items", {"headers": {"X-API-Key": key}}),
            ("GET", "/items", {"headers": {"Cookie": f"bastion_session={cookie}"}}),
        ]
        for method, path, kwargs in requests:
            response = await harness.client.request(method, path, **kwargs)
            assert response.status_code == 500, (path, response.text)
        lines = logs.lines()
        logged = logs.text()
    assert len([line for line in lines if line.get("event") == "unhandled_error"]) == len(requests)
    secrets = {"password": ALICE_PASSWORD, "jwt": jwt, "api key": key, "session cookie": cookie}
    found = leaks(secrets, {"logs": logged})
    assert not found, found


async def test_secrets_passed_as_event_details_are_stored_redacted(harness: Harness) -> None:
    """Details are stored redacted: even a caller passing a secret by name or by shape gets
    ``[REDACTED]`` in the row (defence in depth behind the callers' own care)."""
    headers, key = await new_user_with_key(harness)
    jwt = headers["Authorization"].removeprefix("Bearer ")
    await harness.bastion.audit.record(
        EventType.USER_CHANGED,
        actor="ivan",
        subject="ivan",
        details={
            "password": ALICE_PASSWORD,
            "note": f"used Bearer {jwt} and key {key}",
            "nested": [{"refresh_token": "r" * 40}],
        },
    )
    async with harness.bastion.db.transaction() as session:
        row = (
            (await session.execute(select(AuditEventRow).order_by(AuditEventRow.id.desc())))
            .scalars()
            .first()
        )
    assert row is not None
    for secret in (ALICE_PASSWORD, jwt, key, "r" * 40):
        assert secret not in row.details
    assert "[REDACTED]" in row.details
