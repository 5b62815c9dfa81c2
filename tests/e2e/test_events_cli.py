"""``bastion events export`` and ``bastion events prune`` (SPEC §1.4, §6), on SQLite and on
PostgreSQL: the audit trail out for a SIEM, one JSON object per line, oldest first; and the
retention of ``BASTION_AUDIT_RETENTION_DAYS`` applied.

The commands run through Typer's runner in plain (sync) tests, as a shell would run them: each
opens its own event loop. Events are written straight into the database beforehand.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from bastion.cli import app
from bastion.storage.db import Database
from bastion.storage.models import AuditEventRow
from tests.conftest import TEST_SECRET

RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
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
NOW = datetime.now(UTC)


def event(time: datetime, type: str = "login_failed", subject: str = "bob") -> AuditEventRow:
    return AuditEventRow(
        time=time,
        type=type,
        actor=None,
        subject=subject,
        ip="203.0.113.9",
        user_agent="curl/8",
        request_id="req-1",
        outcome="failure",
        details=json.dumps({"via": "token", "reason": "bad_credentials"}),
    )


async def _migrate_and_insert(url: str, rows: Sequence[AuditEventRow]) -> None:
    db = Database(url)
    try:
        await db.upgrade()
        async with db.transaction() as session:
            session.add_all(list(rows))
    finally:
        await db.dispose()


async def _stored(url: str) -> list[tuple[str, datetime]]:
    db = Database(url)
    try:
        async with db.transaction() as session:
            result = await session.execute(
                select(AuditEventRow.subject, AuditEventRow.time).order_by(AuditEventRow.id)
            )
            return [(subject or "", time) for subject, time in result.all()]
    finally:
        await db.dispose()


async def _count(url: str) -> int:
    db = Database(url)
    try:
        async with db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)
    finally:
        await db.dispose()


def insert(url: str, rows: Sequence[AuditEventRow]) -> None:
    asyncio.run(_migrate_and_insert(url, rows))


@pytest.fixture
def cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[CliRunner, dict[str, str]]:
    for key in [k for k in os.environ if k.startswith("BASTION_")]:
        monkeypatch.delenv(key)
    env = {
        "BASTION_DATABASE_URL": database_url,
        "BASTION_DATA_DIR": str(tmp_path),
        "BASTION_SECRET_KEY": TEST_SECRET,
    }
    return CliRunner(), env


def run(cli: tuple[CliRunner, dict[str, str]], *args: str, **env: str) -> Result:
    runner, base = cli
    return runner.invoke(app, list(args), env={**base, **env})


def exported(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    return [json.loads(line) for line in lines]


# ----------------------------------------------------------------------------- export


def test_export_prints_one_json_object_per_event_oldest_first(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    insert(
        database_url,
        [
            event(NOW - timedelta(days=400), subject="ancient"),
            event(NOW - timedelta(hours=2), subject="earlier"),
            event(NOW - timedelta(minutes=1), type="login_succeeded", subject="later"),
        ],
    )
    events = exported(run(cli, "events", "export", "--since", "2000-01-01T00:00:00Z"))
    assert [e["subject"] for e in events] == ["ancient", "earlier", "later"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    for item in events:
        assert set(item) == EVENT_FIELDS
        assert re.match(RFC3339_UTC, str(item["time"]))
        assert item["details"] == {"via": "token", "reason": "bad_credentials"}
        assert item["ip"] == "203.0.113.9"
        assert item["user_agent"] == "curl/8"
        assert item["request_id"] == "req-1"
    assert events[-1]["type"] == "login_succeeded"
    assert events[0]["outcome"] == "failure"


def test_export_without_since_prints_everything(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    insert(database_url, [event(NOW - timedelta(days=d)) for d in (3, 2, 1)])
    assert len(exported(run(cli, "events", "export"))) == 3
    assert len(exported(run(cli, "events", "export", "--format", "jsonl"))) == 3


def test_export_since_keeps_only_events_at_or_after_it(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    insert(
        database_url,
        [
            event(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), subject="before"),
            event(datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC), subject="at"),
            event(datetime(2026, 6, 1, tzinfo=UTC), subject="after"),
        ],
    )
    since = exported(
        run(cli, "events", "export", "--since", "2026-01-01T00:00:00Z", "--format", "jsonl")
    )
    assert [e["subject"] for e in since] == ["at", "after"]
    # The same instant with another offset.
    offset = exported(run(cli, "events", "export", "--since", "2026-01-01T02:00:00+02:00"))
    assert [e["subject"] for e in offset] == ["at", "after"]
    assert exported(run(cli, "events", "export", "--since", "2030-01-01T00:00:00Z")) == []


def test_export_pages_through_a_long_trail_without_gaps(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    rows = [event(NOW - timedelta(seconds=2000 - n), subject=f"s{n}") for n in range(1203)]
    insert(database_url, rows)
    events = exported(run(cli, "events", "export"))
    assert [e["subject"] for e in events] == [f"s{n}" for n in range(1203)]
    assert len({e["id"] for e in events}) == 1203


def test_export_writes_nothing_but_events_to_stdout(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    """A SIEM pipes standard output: any message must go to standard error."""
    insert(database_url, [event(NOW)])
    result = run(cli, "events", "export")
    assert result.exit_code == 0, result.output
    for line in result.stdout.splitlines():
        assert isinstance(json.loads(line), dict)


@pytest.mark.parametrize(
    "since",
    ["yesterday", "2026-01-01", "2026-01-01T00:00:00", "2026-13-45T00:00:00Z", ""],
)
def test_a_bad_since_is_a_usage_error(
    cli: tuple[CliRunner, dict[str, str]], database_url: str, since: str
) -> None:
    insert(database_url, [event(NOW)])
    result = run(cli, "events", "export", "--since", since)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert "rfc 3339" in result.stderr.lower() or "time zone" in result.stderr.lower()


@pytest.mark.parametrize("format", ["csv", "json", "JSONL", ""])
def test_an_unknown_format_is_a_usage_error(
    cli: tuple[CliRunner, dict[str, str]], database_url: str, format: str
) -> None:
    insert(database_url, [event(NOW)])
    result = run(cli, "events", "export", "--format", format)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert "format" in result.stderr.lower()


# ----------------------------------------------------------------------------- prune


def test_prune_deletes_events_older_than_the_retention(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    insert(
        database_url,
        [
            event(NOW - timedelta(days=400), subject="very old"),
            event(NOW - timedelta(days=91), subject="old"),
            event(NOW - timedelta(days=89), subject="recent"),
            event(NOW - timedelta(minutes=5), subject="new"),
        ],
    )
    result = run(cli, "events", "prune")
    assert result.exit_code == 0, result.output
    assert "2" in result.stdout
    kept = asyncio.run(_stored(database_url))
    assert [subject for subject, _ in kept] == ["recent", "new"]

    # Pruning again is harmless.
    again = run(cli, "events", "prune")
    assert again.exit_code == 0, again.output
    assert asyncio.run(_count(database_url)) == 2


def test_prune_follows_the_retention_setting(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    insert(
        database_url,
        [
            event(NOW - timedelta(days=31), subject="month old"),
            event(NOW - timedelta(days=29), subject="weeks old"),
            event(NOW - timedelta(hours=1), subject="new"),
        ],
    )
    result = run(cli, "events", "prune", BASTION_AUDIT_RETENTION_DAYS="30")
    assert result.exit_code == 0, result.output
    kept = [subject for subject, _ in asyncio.run(_stored(database_url))]
    assert kept == ["weeks old", "new"]
    exported_subjects = [e["subject"] for e in exported(run(cli, "events", "export"))]
    assert exported_subjects == ["weeks old", "new"]


def test_an_invalid_retention_is_refused_without_deleting(
    cli: tuple[CliRunner, dict[str, str]], database_url: str
) -> None:
    insert(database_url, [event(NOW - timedelta(days=400))])
    for value in ("0", "-5", "forever"):
        result = run(cli, "events", "prune", BASTION_AUDIT_RETENTION_DAYS=value)
        assert result.exit_code == 1, result.output
        assert "BASTION_AUDIT_RETENTION_DAYS" in result.stderr
        assert "Traceback" not in result.output
    assert asyncio.run(_count(database_url)) == 1
