"""The real ``bastion serve`` process, driven over HTTP as a user would (issue 3, §1.2)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.slow

BASTION = [sys.executable, "-m", "bastion"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATA_DIR=str(data_dir),
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
        **extra,
    )
    return env


def wait_until_up(base_url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early: {process.communicate()[1]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """``bastion serve`` on a fresh data directory and a free port; stopped afterwards. One
    server for the module: starting Python twice costs seconds on a small machine."""
    tmp_path = tmp_path_factory.mktemp("served")
    port = free_port()
    create = subprocess.run(
        [*BASTION, "createuser", "alice", "--admin", "--password-stdin"],
        input=STRONG_PASSWORD + "\n",
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert create.returncode == 0, create.stderr
    process = subprocess.Popen(
        [*BASTION, "serve", "--port", str(port)],
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        yield base_url, tmp_path, process
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_runs_the_reference_api_on_embedded_sqlite(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base_url, data_dir, _ = served
    with httpx.Client(base_url=base_url, timeout=10) as client:
        assert client.get("/public").json() == {"message": "Anyone can see this"}
        token = client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
        )
        assert token.status_code == 200, token.text
        assert token.headers["cache-control"] == "no-store"
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        me = client.get("/auth/me", headers=headers).json()
        assert me["username"] == "alice"
        assert "admin" in me["roles"]
        assert me["auth"] == "bearer"
        created = client.post("/items", json={"name": "first"}, headers=headers)
        assert created.status_code == 201
        listed = client.get("/items", headers=headers).json()
        assert [i["name"] for i in listed["items"]] == ["first"]
        assert client.get("/secure-data").status_code == 401
    assert (data_dir / "bastion.db").exists()


def test_serve_generates_a_private_development_secret(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    _, data_dir, _ = served
    key_file = data_dir / "secret.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 43


def test_serve_ignores_forwarded_headers_from_an_untrusted_peer(
    served: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    """uvicorn's own proxy-header handling is off: a client cannot claim another scheme."""
    base_url, _, _ = served
    response = httpx.get(
        f"{base_url}/docs/oauth2-redirect",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        timeout=5,
    )
    assert response.status_code == 200


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [*BASTION, "serve", "--port", str(free_port())],
        env=cli_env(tmp_path, BASTION_ENV="production", BASTION_ALLOWED_HOSTS="api.example.com"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "BASTION_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "secret.key").exists()
