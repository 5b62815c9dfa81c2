"""``/metrics`` on a separate listen address, and counters summed over several workers
(SPEC §4.6, issue 6)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, open_harness
from tests.e2e.test_serve_process import BASTION, cli_env, free_port, wait_until_up


def requests_counted(text: str, route: str) -> float:
    pattern = re.compile(
        r'^bastion_requests_total\{[^}]*route="' + re.escape(route) + r'"[^}]*\} ([0-9.e+]+)$',
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(text))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_metrics_address_serves_without_credentials(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(database_url, tmp_path, metrics_address=f"127.0.0.1:{port}")
    async with open_harness(settings) as h:
        for _ in range(3):
            assert (await h.client.get("/public")).status_code == 200
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert requests_counted(scraped.text, "/public") == 3
        assert (await h.client.get("/metrics")).status_code == 401
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient() as scraper:
            await scraper.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


@pytest.mark.slow
def test_two_workers_report_one_sum(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = cli_env(tmp_path, BASTION_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}")
    process = subprocess.Popen(
        [*BASTION, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(20):
                # A new connection each time, so the kernel spreads them over both workers.
                assert httpx.get(f"http://127.0.0.1:{port}/public", timeout=5).status_code == 200
            assert client.get("/public").status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert requests_counted(scraped, "/public") == 21
    finally:
        process.terminate()
        process.wait(timeout=20)
