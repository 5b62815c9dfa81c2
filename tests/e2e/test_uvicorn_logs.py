"""Library use under a real ``uvicorn`` process (SPEC §3, §4.4, §6): uvicorn's access log prints
every request line with its query string, and its error log what it refuses. Neither may show
the value of a secret query parameter, whatever the route, nor any other secret.

The check searches the process's whole output for the *literal* secrets the test sent."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bastion.audit.redact import REDACTED, SECRET_QUERY_PARAMS
from tests.conftest import STRONG_PASSWORD
from tests.e2e.test_serve_process import cli_env, free_port, wait_until_up

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    base_url: str
    port: int
    process: subprocess.Popen[str]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Everything the server printed, once it has stopped."""
        self.process.terminate()
        self.process.wait(timeout=15)
        return self.stdout.read_text() + self.stderr.read_text()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``uvicorn tests.e2e.download_app:app`` with uvicorn's defaults (access log on)."""
    env = cli_env(tmp_path)
    create = subprocess.run(
        [sys.executable, "-m", "bastion", "createuser", "ivan", "--password-stdin"],
        input=STRONG_PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert create.returncode == 0, create.stderr
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "tests.e2e.download_app:app"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
    server = Served(f"http://127.0.0.1:{port}", port, process, stdout, stderr)
    try:
        wait_until_up(server.base_url, process)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def secrets_for(client: httpx.Client) -> dict[str, str]:
    """A real access token and API key for ``ivan``, and made-up values for the rest."""
    token = client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "ivan", "password": STRONG_PASSWORD},
    )
    assert token.status_code == 200, token.text
    jwt = token.json()["access_token"]
    key = client.post(
        "/auth/keys", json={"name": "link"}, headers={"Authorization": f"Bearer {jwt}"}
    )
    assert key.status_code == 201, key.text
    values = {
        "password": STRONG_PASSWORD.replace(" ", "-"),
        "token": jwt,
        "refresh_token": "refresh-" + "r" * 40,
        "access_token": jwt,
        "api_key": key.json()["key"],
        "client_secret": "client-secret-" + "c" * 30,
    }
    assert set(values) == set(SECRET_QUERY_PARAMS)
    return values


def send_raw(port: int, data: bytes) -> None:
    """Bytes no HTTP client would send, for uvicorn's "Invalid HTTP request received."."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.recv(4096)


def test_uvicorns_logs_never_show_a_secret_query_value(served: Served) -> None:
    with httpx.Client(base_url=served.base_url, timeout=10) as client:
        secrets = secrets_for(client)
        key = secrets["api_key"]
        assert client.get("/download", params={"api_key": key}).json() == {"for": "ivan"}
        for path in ("/download", "/health", "/no-such-route", "/auth/token"):
            client.get(path, params=secrets)
        refused = client.post("/auth/token", params={"password": secrets["password"]})
        assert refused.status_code == 400
    send_raw(served.port, f"GET /download?api_key={key} HTTP/1.1\r\nHost: \x00\r\n\r\n".encode())
    logged = served.output()

    # The places searched are not empty: uvicorn logged each request line, redacted.
    assert f'"GET /download?api_key={REDACTED} HTTP/1.1" 200' in logged, logged
    assert "/no-such-route?" in logged
    assert "Invalid HTTP request received." in logged
    found = [name for name, value in secrets.items() if value in logged]
    assert not found, (found, logged)
