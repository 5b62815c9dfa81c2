"""Many workers, many nodes (issue 7, SPEC §7): real ``bastion serve`` processes sharing one
PostgreSQL database and one Redis enforce one limit and one revocation.

The machine's PostgreSQL and Redis are used, as in CI, with a database and a key prefix of
this module's own, dropped and deleted afterwards."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD, TEST_SECRET
from tests.e2e.test_serve_process import BASTION, cli_env, free_port, wait_until_up

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LOGIN = {"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD}


@pytest.fixture
def shared_env(
    postgres_database: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> dict[str, str]:
    """What every node of one deployment shares: database, Redis, signing secret."""
    env = cli_env(
        tmp_path,
        BASTION_DATABASE_URL=postgres_database,
        BASTION_REDIS_URL=redis_url,
        BASTION_REDIS_PREFIX=redis_prefix,
        BASTION_SECRET_KEY=TEST_SECRET,
        BASTION_RATELIMIT_IP="100/minute",
        BASTION_RATELIMIT_LOGIN="1000/minute",
    )
    reset = subprocess.run(
        [sys_executable(), "-c", TRUNCATE_SCRIPT, postgres_database],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reset.returncode == 0, reset.stderr
    created = subprocess.run(
        [*BASTION, "createuser", "alice", "--admin", "--password-stdin"],
        input=STRONG_PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    return env


def sys_executable() -> str:
    return BASTION[0]


TRUNCATE_SCRIPT = """
import asyncio, sys
import asyncpg
async def main(url):
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute(
        "TRUNCATE users, refresh_families, refresh_tokens, revoked_access_tokens, items, "
        "login_failures, api_keys, sessions, audit_events RESTART IDENTITY CASCADE")
    await conn.close()
asyncio.run(main(sys.argv[1]))
"""


@contextmanager
def node(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """One ``bastion serve`` process (with ``workers`` workers); its base URL."""
    port = free_port()
    log_path = Path(env["BASTION_DATA_DIR"]) / f"node-{port}.log"
    with log_path.open("w") as log:  # a file, not a pipe nobody reads: a full pipe blocks
        process = subprocess.Popen(
            [*BASTION, "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=log,
            stderr=log,
            text=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def statuses(urls: list[str], count: int, concurrency: int = 8) -> list[int]:
    """``count`` GETs of ``/public``, spread over ``urls`` and over fresh connections."""
    results: list[int] = []
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            index = queue.pop()
            limits = httpx.Limits(max_keepalive_connections=0)  # new connection: any worker
            async with httpx.AsyncClient(limits=limits, timeout=10) as client:
                response = await client.get(f"{urls[index % len(urls)]}/public")
            results.append(response.status_code)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def test_two_workers_enforce_one_limit(shared_env: dict[str, str]) -> None:
    with node(shared_env, workers=2) as url:
        answered = asyncio.run(statuses([url], 300))
    assert answered.count(200) == 100
    assert answered.count(429) == 200


def test_two_nodes_enforce_one_limit(shared_env: dict[str, str]) -> None:
    with node(shared_env) as first, node(shared_env) as second:
        answered = asyncio.run(statuses([first, second], 300))
    assert answered.count(200) == 100
    assert answered.count(429) == 200


def refused_after(client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    """Seconds until ``url`` answers 401; the promise is one second."""
    started = time.monotonic()
    while (status := client.get(url, headers=headers).status_code) == 200:
        assert time.monotonic() - started < 1.0, "still accepted a second after revocation"
        time.sleep(0.01)
    assert status == 401
    return time.monotonic() - started


def test_a_revocation_on_one_node_is_refused_on_the_other_within_a_second(
    shared_env: dict[str, str],
) -> None:
    with node(shared_env) as a, node(shared_env) as b, httpx.Client(timeout=10) as client:
        tokens = client.post(f"{a}/auth/token", data=LOGIN).json()
        token = {"Authorization": f"Bearer {tokens['access_token']}"}
        key = client.post(f"{a}/auth/keys", json={"name": "ci"}, headers=token).json()
        key_headers = {"X-API-Key": key["key"]}
        assert client.get(f"{b}/auth/me", headers=token).status_code == 200
        assert client.get(f"{b}/auth/me", headers=key_headers).status_code == 200

        assert client.post(f"{a}/auth/revoke", data={"token": tokens["access_token"]}).is_success
        token_delay = refused_after(client, f"{b}/auth/me", token)

        fresh = client.post(f"{b}/auth/token", data=LOGIN).json()["access_token"]
        assert client.delete(f"{a}/auth/keys/{key['id']}", headers=bearer(fresh)).status_code == 204
        key_delay = refused_after(client, f"{b}/auth/me", key_headers)

    print(f"cross-node revocation delay: token {token_delay:.3f} s, key {key_delay:.3f} s")
    assert max(token_delay, key_delay) < 1.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
