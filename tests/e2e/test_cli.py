"""The ``bastion`` command line (SPEC §1.4): spellings, exit codes, and no tracebacks."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from tests.conftest import STRONG_PASSWORD, TEST_SECRET


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key in [k for k in os.environ if k.startswith("BASTION_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BASTION_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("BASTION_ARGON2_MEMORY_COST", "1024")
    return CliRunner()


def test_gen_secret_prints_a_fresh_strong_secret(runner: CliRunner) -> None:
    first = runner.invoke(app, ["gen-secret"])
    second = runner.invoke(app, ["gen-secret"])
    assert first.exit_code == 0
    assert len(first.stdout.strip()) >= 43
    assert first.stdout != second.stdout


def test_check_config_lists_every_finding_and_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check-config"], env={"BASTION_CORS_ORIGINS": "*"})
    assert result.exit_code == 1
    findings = [line for line in result.stdout.splitlines() if line.startswith("finding: ")]
    assert len(findings) == 3
    for setting in ("BASTION_SECRET_KEY", "BASTION_ALLOWED_HOSTS", "BASTION_CORS_ORIGINS"):
        assert any(setting in line for line in findings)
        assert setting in result.stderr  # the one-line verdict names them too


def test_check_config_passes_a_production_ready_configuration(runner: CliRunner) -> None:
    env = {"BASTION_SECRET_KEY": TEST_SECRET, "BASTION_ALLOWED_HOSTS": "api.example.com"}
    result = runner.invoke(app, ["check-config"], env=env)
    assert result.exit_code == 0, result.stderr


def test_an_invalid_setting_is_named_without_a_traceback(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check-config"], env={"BASTION_ACCESS_TOKEN_TTL": "soon"})
    assert result.exit_code == 1
    assert "BASTION_ACCESS_TOKEN_TTL" in result.stderr
    assert "Traceback" not in result.output


def test_db_upgrade_creates_the_schema(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    tables = {
        row[0]
        for row in sqlite3.connect(tmp_path / "bastion.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"users", "refresh_families", "refresh_tokens", "items"} <= tables


def test_createuser_reads_the_password_from_stdin(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["createuser", "Alice", "--admin", "--password-stdin"], input=STRONG_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "'alice'" in result.stdout
    assert STRONG_PASSWORD not in result.output


def test_createuser_prompts_for_the_password_twice(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["createuser", "bob"], input=f"{STRONG_PASSWORD}\n{STRONG_PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output


def test_createuser_refuses_a_common_password_with_a_reason(runner: CliRunner) -> None:
    result = runner.invoke(app, ["createuser", "carol", "--password-stdin"], input="password1234\n")
    assert result.exit_code == 1
    assert "common" in result.stderr
    assert "Traceback" not in result.output


def test_createuser_refuses_a_taken_name(runner: CliRunner) -> None:
    args = ["createuser", "dave", "--password-stdin"]
    assert runner.invoke(app, args, input=STRONG_PASSWORD + "\n").exit_code == 0
    again = runner.invoke(app, [*args[:1], "DAVE", args[2]], input=STRONG_PASSWORD + "\n")
    assert again.exit_code == 1
    assert "taken" in again.stderr


def test_a_password_on_the_command_line_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["createuser", "erin", "--password", STRONG_PASSWORD])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        (["db", "upgrade"], {"BASTION_DATABASE_URL": "nonsense"}, "BASTION_DATABASE_URL"),
        (["serve"], {"BASTION_DATABASE_URL": "mysql://db/app"}, "BASTION_DATABASE_URL"),
        (["db", "upgrade"], {"BASTION_DATA_DIR": "/etc/hostname/sub"}, "BASTION_DATA_DIR"),
        (
            ["createuser", "bob", "--password-stdin"],
            {"BASTION_DATA_DIR": "/etc/hostname/sub"},
            "BASTION_DATA_DIR",
        ),
        (["serve"], {"BASTION_SECRET_KEY_FILE": "/nonexistent"}, "BASTION_SECRET_KEY_FILE"),
        (
            ["check-config"],
            {"BASTION_CORS_ORIGINS": "*", "BASTION_CORS_ALLOW_CREDENTIALS": "true"},
            "BASTION_CORS_ALLOW_CREDENTIALS",
        ),
    ],
)
def test_a_configuration_mistake_is_one_line_naming_the_setting(
    runner: CliRunner, command: list[str], env: dict[str, str], named: str
) -> None:
    result = runner.invoke(app, command, env=env, input=STRONG_PASSWORD + "\n")
    assert result.exit_code == 1
    assert named in result.stderr
    assert "BASTION_:" not in result.stderr
    assert "Traceback" not in result.output


def test_an_unreachable_database_is_a_message_not_a_traceback(runner: CliRunner) -> None:
    env = {"BASTION_DATABASE_URL": "postgresql+asyncpg://127.0.0.1:1/nothing"}
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 1
    assert "database is unavailable" in result.stderr
    assert "Traceback" not in result.output


def test_the_data_directory_and_database_are_private(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    result = runner.invoke(app, ["db", "upgrade"], env={"BASTION_DATA_DIR": str(data)})
    assert result.exit_code == 0, result.output
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "bastion.db").stat().st_mode & 0o777 == 0o600
