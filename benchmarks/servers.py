"""The variants, and the real servers they run as: one uvicorn worker each, pinned to one CPU.

Each server gets a fresh data directory, a fixed secret and its own environment; the credential
its measured route needs is obtained over HTTP, the way a client would, before any load runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from benchmarks.load import Target

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-only-secret-0123456789abcdef-0123456789abcdef"  # noqa: S105 - fixed on purpose
USERNAME = "benchuser"
PASSWORD = "Quokka-lantern-7f3c-harbour"  # noqa: S105 - a throw-away user of a throw-away database
EMAIL = "bench@example.com"
HUGE_LIMIT = "100000000/minute"
"""Limits the limiter counts against on every request but that no run comes near."""

BASTION_ENV = {
    "BASTION_SECRET_KEY": SECRET,
    "BASTION_RATELIMIT_IP": HUGE_LIMIT,
    "BASTION_RATELIMIT_PRINCIPAL": HUGE_LIMIT,
    "BASTION_ACCESS_TOKEN_TTL": "3600",
    "BASTION_LOG_FORMAT": "json",
}
REDIS_URL = "redis://127.0.0.1:6379/15"


class SetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    group: str
    """``baseline``, ``bastion`` or ``peer``: the chart colours and the table sections."""
    factory: str
    path: str
    prepare: Callable[[Server], dict[str, str]]
    """Obtains the credential over HTTP; returns the headers of the measured request."""
    env: dict[str, str] = field(default_factory=dict)
    bastion_user: bool = False
    needs_redis: bool = False
    workers: int = 1
    """Several workers share the machine's CPUs (wrk's included) instead of one pinned CPU."""


# ------------------------------------------------------------------------------ credentials


def _no_credential(server: Server) -> dict[str, str]:
    return {}


def _bastion_token(server: Server) -> str:
    answer = server.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": USERNAME, "password": PASSWORD},
    )
    _expect(answer, 200, "POST /auth/token")
    return str(answer.json()["access_token"])


def _bastion_bearer(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {_bastion_token(server)}"}


def _bastion_api_key(server: Server) -> dict[str, str]:
    token = _bastion_token(server)
    answer = server.client.post(
        "/auth/keys", json={"name": "benchmark"}, headers={"Authorization": f"Bearer {token}"}
    )
    _expect(answer, 201, "POST /auth/keys")
    return {"X-API-Key": str(answer.json()["key"])}


def _bastion_session(server: Server) -> dict[str, str]:
    answer = server.client.post("/auth/session", json={"username": USERNAME, "password": PASSWORD})
    _expect(answer, 200, "POST /auth/session")
    cookies = "; ".join(f"{name}={value}" for name, value in answer.cookies.items())
    return {"Cookie": cookies}


def _fastapi_users_bearer(server: Server) -> dict[str, str]:
    answer = server.client.post("/auth/register", json={"email": EMAIL, "password": PASSWORD})
    _expect(answer, 201, "POST /auth/register")
    answer = server.client.post("/auth/jwt/login", data={"username": EMAIL, "password": PASSWORD})
    _expect(answer, 200, "POST /auth/jwt/login")
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _authx_bearer(server: Server) -> dict[str, str]:
    answer = server.client.post("/login")
    _expect(answer, 200, "POST /login")
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _expect(answer: httpx.Response, status: int, what: str) -> None:
    if answer.status_code != status:
        raise SetupError(f"{what} answered {answer.status_code}: {answer.text[:300]}")


# ---------------------------------------------------------------------------------- variants

VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", "FastAPI hello (baseline)", "baseline", "baseline_app", "/hello",
            _no_credential),
    Variant("public", "Bastion public route (edge)", "bastion", "bastion_app", "/hello",
            _no_credential, bastion_user=False),
    Variant("public-redis", "Bastion public route, Redis limits", "bastion", "bastion_app",
            "/hello", _no_credential, env={"BASTION_REDIS_URL": REDIS_URL}, needs_redis=True),
    Variant("bearer", "Bastion bearer (full stack)", "bastion", "bastion_app", "/bearer",
            _bastion_bearer, bastion_user=True),
    Variant("apikey", "Bastion API key", "bastion", "bastion_app", "/key",
            _bastion_api_key, bastion_user=True),
    Variant("session", "Bastion session cookie", "bastion", "bastion_app", "/session",
            _bastion_session, bastion_user=True),
    Variant("bearer-redis", "Bastion bearer, Redis limits", "bastion", "bastion_app", "/bearer",
            _bastion_bearer, env={"BASTION_REDIS_URL": REDIS_URL}, bastion_user=True,
            needs_redis=True),
    Variant("bearer-redis-2w", "Bastion bearer, Redis limits, 2 workers", "bastion",
            "bastion_app", "/bearer", _bastion_bearer, env={"BASTION_REDIS_URL": REDIS_URL},
            bastion_user=True, needs_redis=True, workers=2),
    Variant("fastapi-users", "fastapi-users (JWT, active user)", "peer", "fastapi_users_app",
            "/hello", _fastapi_users_bearer),
    Variant("authx", "AuthX (access token)", "peer", "authx_app", "/hello", _authx_bearer),
    Variant("slowapi", "slowapi (limit on hello)", "peer", "slowapi_app", "/hello",
            _no_credential),
)  # fmt: skip

LOGIN = Variant(
    "login",
    "Bastion login",
    "bastion",
    "bastion_app",
    "/auth/token",
    _no_credential,
    env={
        "BASTION_RATELIMIT_LOGIN": HUGE_LIMIT,
        "BASTION_LOCKOUT_THRESHOLD": "1000000",
    },
    bastion_user=True,
)
"""The token endpoint's server: the login limit raised (the lockout counts only failures, and
every login here uses the right password; its threshold is raised all the same)."""

LOGIN_FORM = f"grant_type=password&username={USERNAME}&password={PASSWORD}"


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# ----------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of a process and of its descendants (uvicorn's workers: the
    live ones, and those it has reaped), from ``/proc``; ``None`` where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in _children(pid):
        total += cpu_seconds(child) or 0.0
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


class Server:
    """One variant's uvicorn process and its data directory."""

    def __init__(self, variant: Variant, pin: str | None) -> None:
        self.variant = variant
        self.pin = pin
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"bastion-bench-{variant.name}-"))
        self.log_path = self.data_dir / "server.log"
        self.env = {
            **os.environ,
            "BENCH_DATA_DIR": str(self.data_dir),
            "BENCH_SECRET": SECRET,
            "BASTION_DATA_DIR": str(self.data_dir),
            **(BASTION_ENV if variant.factory == "bastion_app" else {}),
            **variant.env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        self.headers: dict[str, str] = {}

    def start(self) -> None:
        if self.variant.bastion_user:
            self._create_bastion_user()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            f"benchmarks.apps:{self.variant.factory}",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--no-proxy-headers",
            "--log-level",
            "warning",
            "--workers",
            str(self.variant.workers),
        ]
        if self.pin is not None:
            cmd = ["taskset", "-c", self.pin, *cmd]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_ready()
        self.headers = self.variant.prepare(self)
        if self.variant is not LOGIN:
            check = self.client.get(self.variant.path, headers=self.headers)
            _expect(check, 200, f"GET {self.variant.path}")

    def _create_bastion_user(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "bastion", "createuser", USERNAME, "--password-stdin"],
            input=PASSWORD + "\n",
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SetupError(f"bastion createuser failed: {done.stderr.strip() or done.stdout}")

    def _wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SetupError(f"{self.variant.name} exited at start: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise SetupError(f"{self.variant.name} did not listen within {timeout:.0f} s")

    def target(
        self,
        path: str | None = None,
        *,
        method: str = "GET",
        body: str | None = None,
        headers: dict[str, str] | None = None,
        delay_ms: int = 0,
    ) -> Target:
        return Target(
            url=self.base_url + (path or self.variant.path),
            method=method,
            headers={**self.headers, **(headers or {})},
            body=body,
            delay_ms=delay_ms,
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.process.pid) if self.process is not None else None

    def stop(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.data_dir, ignore_errors=True)
