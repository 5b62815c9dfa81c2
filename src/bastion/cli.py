"""``bastion``: the command line of SPEC §1.4. Parses, calls a service, prints; no rules here.

Exit codes: 0 success, 1 a finding or a refused operation (with a message naming why), 2 a usage
error (Typer's own). Errors go to standard error, never as a traceback for a user's mistake.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from bastion.api.admin import audit_event_out
from bastion.core import Bastion, ConfigurationError, with_development_secret
from bastion.errors import BastionError, ServiceUnavailable, ValidationFailed
from bastion.settings import BastionSettings, generate_secret
from bastion.storage.db import Database
from bastion.storage.repositories.audit import AuditRepository
from bastion.tokens.keys import KeyConfigurationError
from bastion.usernames import InvalidUsername, normalize_username

app = typer.Typer(
    name="bastion",
    help="Bastion: a secure-by-default security layer and API server for FastAPI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
events_app = typer.Typer(
    help="The audit trail: export for a SIEM, apply retention.", no_args_is_help=True
)
app.add_typer(events_app, name="events")

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    typer.echo(f"bastion: {message}", err=True)
    raise typer.Exit(1)


def load_settings(**overrides: Any) -> BastionSettings:
    try:
        return BastionSettings(**overrides)
    except SettingsError as exc:
        fail(f"invalid configuration: {exc}")
    except ValidationError as exc:
        fail(f"invalid configuration: {'; '.join(_setting_problem(e) for e in exc.errors())}")


def _setting_problem(error: Any) -> str:
    """``BASTION_NAME: what is wrong``; a whole-model check already names its settings."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    return f"BASTION_{'_'.join(str(p) for p in error['loc']).upper()}: {message}"


def build_bastion(settings: BastionSettings) -> Bastion:
    try:
        return Bastion(with_development_secret(settings))
    except ConfigurationError as exc:
        fail("refusing to start: " + "; ".join(exc.findings))
    except KeyConfigurationError as exc:
        fail(f"refusing to start: {exc}")
    except OSError as exc:
        fail(f"refusing to start: BASTION_DATA_DIR ({settings.data_dir}) cannot be used: {exc}")


def open_database(settings: BastionSettings) -> Database:
    try:
        return Database(settings.effective_database_url)
    except OSError as exc:
        fail(f"BASTION_DATA_DIR ({settings.data_dir}) cannot be used: {exc}")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; a backend or file-system failure is a message, not a traceback."""
    try:
        return asyncio.run(coro)
    except ValidationFailed as exc:
        fail("; ".join(str(e["msg"]) for e in exc.errors))
    except ServiceUnavailable as exc:
        fail(f"{exc.detail} ({_reason(exc.__cause__)})")
    except BastionError as exc:
        fail(exc.detail)
    except (OSError, SQLAlchemyError) as exc:
        fail(f"the database cannot be used: {_reason(exc)}")


def _reason(exc: BaseException | None) -> str:
    """The first line of a driver's own message: where it could not connect, say. Never the
    URL, which may carry a password."""
    while isinstance(exc, SQLAlchemyError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if exc is None:
        return "no detail"
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the reference API server (SPEC §4)."""
    import uvicorn

    from bastion.logs import configure_logging

    settings = load_settings(workers=workers)
    configure_logging(settings)
    bastion = build_bastion(settings)
    if workers > 1 and not settings.redis_url:
        typer.echo(
            "bastion: warning: several workers without BASTION_REDIS_URL: rate limits and "
            "revocations are per process",
            err=True,
        )
    run(_migrate(bastion.db))
    if workers > 1 and not settings.prometheus_multiproc_dir:
        _prepare_multiprocess_metrics(settings.data_dir / "metrics")
    typer.echo(f"bastion: serving on http://{host}:{port} ({settings.env.value})", err=True)
    uvicorn.run(
        "bastion.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
        log_config=None,
        access_log=False,
        env_file=None,
    )


def _prepare_multiprocess_metrics(directory: Path) -> None:
    """Each worker writes its counters under ``directory``; a scrape of any worker sums them.
    The variable is prometheus-client's own, set here for the workers this process spawns."""
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


async def _migrate(db: Database) -> None:
    try:
        await db.upgrade()
    finally:
        await db.dispose()


@app.command()
def createuser(
    name: Annotated[str, typer.Argument(help="The username.")],
    admin: Annotated[bool, typer.Option("--admin", help="Grant the admin role.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user; the password comes from a prompt or standard input, never from argv."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    bastion = build_bastion(load_settings())
    roles = ["user", "admin"] if admin else ["user"]

    async def create() -> None:
        try:
            await bastion.db.upgrade()
            user = await bastion.accounts.create_user(name, password, roles)
        finally:
            await bastion.db.dispose()
        typer.echo(f"created user {user.username!r} (id {user.id}, roles {' '.join(roles)})")

    run(create())


@app.command()
def unlock(name: Annotated[str, typer.Argument(help="The username to unlock.")]) -> None:
    """Lift a brute-force lockout (SPEC §5), and reset the account's back-off; the audit
    trail records it as it does the admin API's unlock (SPEC §6)."""
    bastion = build_bastion(load_settings())
    try:
        username = normalize_username(name)
    except InvalidUsername as exc:
        fail(str(exc))

    async def lift() -> bool:
        try:
            await bastion.db.upgrade()
            return await bastion.admin.unlock_name(username)
        finally:
            await bastion.db.dispose()

    if run(lift()):
        typer.echo(f"unlocked {username!r}")
    else:
        typer.echo(f"{username!r} was not locked and had no recent failed logins")


@app.command("gen-secret")
def gen_secret() -> None:
    """Print a new strong signing secret for BASTION_SECRET_KEY."""
    typer.echo(generate_secret())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations to the configured database."""
    run(_migrate(open_database(load_settings())))
    typer.echo("database is up to date")


@app.command("check-config")
def check_config() -> None:
    """List every finding of the production checks (SPEC §5); exit 1 when there is any."""
    findings = load_settings().production_findings()
    for finding in findings:
        typer.echo(f"finding: {finding}")
    if findings:
        # the report is the output (for a CI log or a pipe); the verdict goes to stderr, named
        named = sorted(
            {word for f in findings for word in f.split() if word.startswith("BASTION_")}
        )
        typer.echo(f"bastion: {len(findings)} finding(s): {', '.join(named)}", err=True)
        raise typer.Exit(1)
    typer.echo("no findings: this configuration passes the production checks")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time with its zone (``2026-11-23T17:00:00Z``), or a usage error."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an RFC 3339 time", param_hint="--since"
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(
            f"{value!r} has no time zone; add Z or an offset", param_hint="--since"
        )
    return parsed


@events_app.command("export")
def events_export(
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this RFC 3339 time.")
    ] = None,
    format: Annotated[str, typer.Option(help="Output format.")] = "jsonl",
) -> None:
    """Write audit events, oldest first, one JSON object per line, to standard output."""
    if format != "jsonl":
        raise typer.BadParameter("only 'jsonl' is supported", param_hint="--format")
    start = parse_time(since)
    db = open_database(load_settings())

    async def export() -> int:
        count = 0
        after: int | None = None
        try:
            while True:
                async with db.transaction() as session:
                    rows = await AuditRepository(session).oldest_first(
                        since=start, after_id=after, limit=500
                    )
                for row in rows:
                    typer.echo(audit_event_out(row).model_dump_json())
                    count += 1
                if len(rows) < 500:
                    return count
                after = rows[-1].id
        finally:
            await db.dispose()

    exported = run(export())
    typer.echo(f"exported {exported} events", err=True)


@events_app.command("prune")
def events_prune() -> None:
    """Delete events older than BASTION_AUDIT_RETENTION_DAYS (run it daily, e.g. from cron)."""
    settings = load_settings()
    db = open_database(settings)
    cutoff = datetime.now(UTC) - timedelta(days=settings.audit_retention_days)

    async def prune() -> int:
        try:
            async with db.transaction() as session:
                return await AuditRepository(session).prune(cutoff)
        finally:
            await db.dispose()

    typer.echo(f"deleted {run(prune())} events older than {settings.audit_retention_days} days")
