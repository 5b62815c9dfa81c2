"""Metrics (SPEC §6): each app owns its registry; the exposition is Prometheus text; several
workers aggregate through prometheus-client's multiprocess mode; and the request layer counts
and logs each request by route template, never by raw path or query string."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bastion.audit import metrics as metrics_module
from bastion.audit.events import current_request
from bastion.audit.metrics import LATENCY_BUCKETS, Metrics
from bastion.audit.requests import UNMATCHED, RequestLog
from bastion.edge.middleware import EdgeMiddleware
from bastion.settings import BastionSettings
from tests.conftest import TEST_SECRET, one_turn


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# ----------------------------------------------------------------------------- Metrics


def test_each_instance_has_its_own_counters() -> None:
    first, second = Metrics(), Metrics()
    first.security_events.labels("login_failed", "failure").inc()
    first.security_events.labels("login_failed", "failure").inc()
    assert (
        sample(first, "bastion_security_events_total", type="login_failed", outcome="failure") == 2
    )
    assert (
        sample(second, "bastion_security_events_total", type="login_failed", outcome="failure") == 0
    )


def test_a_request_is_counted_and_timed_each_time_it_is_observed() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe_request("GET", "/items/{item_id}", 404, 0.002)
    assert (
        sample(
            metrics, "bastion_requests_total", method="GET", route="/items/{item_id}", status="404"
        )
        == 3
    )
    assert sample(metrics, "bastion_request_duration_seconds_count", route="/items/{item_id}") == 3


def test_a_method_a_client_made_up_is_one_series_not_one_each() -> None:
    """Clients choose the method: each invented one must not become a new time series."""
    metrics = Metrics()
    for method in ("BREW", "PROPFIND", "X" * 40):
        metrics.observe_request(method, "<unmatched>", 405, 0.001)
    assert (
        sample(metrics, "bastion_requests_total", method="OTHER", route="<unmatched>", status="405")
        == 3
    )
    assert not [k for k in samples(metrics) if ("method", "BREW") in k[1]]


def test_the_exposition_is_prometheus_text() -> None:
    metrics = Metrics()
    metrics.requests.labels("GET", "/items/{item_id}", "404").inc()
    metrics.security_events.labels("rate_limited", "denied").inc(3)
    metrics.rate_limited.labels("ip").inc()
    metrics.latency.labels("/items").observe(0.003)
    text = metrics.exposition().decode()
    assert metrics.content_type.startswith("text/plain")
    assert "# TYPE bastion_requests_total counter" in text
    got = samples(metrics)
    assert (
        got[
            (
                "bastion_requests_total",
                frozenset({"method": "GET", "route": "/items/{item_id}", "status": "404"}.items()),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                "bastion_security_events_total",
                frozenset({"type": "rate_limited", "outcome": "denied"}.items()),
            )
        ]
        == 3
    )
    assert got[("bastion_rate_limited_total", frozenset({"policy": "ip"}.items()))] == 1
    bucket = (
        "bastion_request_duration_seconds_bucket",
        frozenset({"route": "/items", "le": "0.005"}.items()),
    )
    assert got[bucket] == 1
    assert (
        got[("bastion_request_duration_seconds_count", frozenset({"route": "/items"}.items()))] == 1
    )


def test_latency_buckets_span_a_millisecond_to_seconds() -> None:
    assert tuple(sorted(LATENCY_BUCKETS)) == LATENCY_BUCKETS
    assert LATENCY_BUCKETS[0] <= 0.001
    assert LATENCY_BUCKETS[-1] >= 2.5


LOAD_METRICS = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bastion_metrics", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
Metrics = module.Metrics
"""
"""Loads ``bastion/audit/metrics.py`` alone (it needs only prometheus-client): a worker's
counters without the cost of importing the whole package in each process."""
WORKER = LOAD_METRICS + textwrap.dedent(
    """
    metrics = Metrics(sys.argv[2])
    metrics.security_events.labels("login_failed", "failure").inc(int(sys.argv[3]))
    metrics.requests.labels("GET", "/public", "200").inc()
    """
)
SCRAPE = LOAD_METRICS + textwrap.dedent(
    """
    sys.stdout.write(Metrics(sys.argv[2]).exposition().decode())
    """
)


def test_several_workers_are_aggregated_in_multiprocess_mode(tmp_path: Path) -> None:
    """prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` at import, so each worker is a
    process of its own, as uvicorn's workers are."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def python(code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, metrics_module.__file__, str(tmp_path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    python(WORKER, "2")
    python(WORKER, "3")
    text = python(SCRAPE)
    got = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    failed = (
        "bastion_security_events_total",
        frozenset({"type": "login_failed", "outcome": "failure"}.items()),
    )
    assert got[failed] == 5
    public = (
        "bastion_requests_total",
        frozenset({"method": "GET", "route": "/public", "status": "200"}.items()),
    )
    assert got[public] == 2


GAUGE_WORKER = LOAD_METRICS + textwrap.dedent(
    """
    Metrics(sys.argv[2]).active_sessions.set(int(sys.argv[3]))
    """
)


def test_the_active_sessions_gauge_is_not_summed_over_workers(tmp_path: Path) -> None:
    """Each worker sets the gauge to the database's whole count, so adding the workers' values
    would multiply it, and a worker that has exited must not keep its count in the total: a
    scrape shows the most recent count (SPEC §6)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def python(code: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, metrics_module.__file__, str(tmp_path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    python(GAUGE_WORKER, "5")  # an older worker, since exited
    python(GAUGE_WORKER, "3")  # the latest count, after two sessions ended
    text = python(SCRAPE)
    values = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bastion_active_sessions"
    ]
    assert values == [3]


# ----------------------------------------------------------------------------- the request layer


class Principal:
    subject = "42"


def build_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    seen: dict[str, Any] = {}
    app.state.seen = seen

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request) -> dict[str, Any]:
        context = current_request.get()
        seen["context"] = context
        request.state.principal = Principal()
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    settings = BastionSettings(secret_key=TEST_SECRET, trusted_proxies=["127.0.0.0/8"])
    app.add_middleware(EdgeMiddleware, settings=settings, observer=RequestLog(metrics))
    return app


EDGE_SAYS = {"X-Request-ID": "req-0001", "X-Forwarded-For": "203.0.113.9"}
"""Through a trusted proxy: the edge takes this client address and keeps this request id."""


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(metrics: Metrics) -> Any:
    transport = httpx.ASGITransport(app=build_app(metrics), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=EDGE_SAYS
    ) as client:
        yield client


async def test_requests_are_counted_by_method_route_template_and_status(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    for item_id in (1, 2, 3):
        assert (await client.get(f"/items/{item_id}")).status_code == 200
    assert (await client.get("/items/abc")).status_code == 422
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.post("/items/1")).status_code == 405
    await one_turn()

    def count(method: str, route: str, status: str) -> float:
        return sample(metrics, "bastion_requests_total", method=method, route=route, status=status)

    assert count("GET", "/items/{item_id}", "200") == 3
    assert count("GET", "/items/{item_id}", "422") == 1
    assert count("POST", "/items/{item_id}", "405") == 1
    assert count("GET", UNMATCHED, "404") == 1
    routes = {
        dict(key[1]).get("route") for key in samples(metrics) if key[0] == "bastion_requests_total"
    }
    assert not {"/items/1", "/items/2", "/items/3", "/nowhere"} & routes
    assert sample(metrics, "bastion_request_duration_seconds_count", route="/items/{item_id}") == 5


async def test_an_unexpected_failure_is_counted_as_a_500(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    await one_turn()
    assert sample(metrics, "bastion_requests_total", method="GET", route="/boom", status="500") == 1


async def test_each_request_is_logged_by_template_without_query_or_raw_path(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        await client.get("/items/31337", params={"api_key": "bst_secret", "password": "hunter2"})
        await one_turn()
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert line["method"] == "GET"
    assert line["route"] == "/items/{item_id}"
    assert line["status"] == 200
    assert line["request_id"] == "req-0001"
    assert line["client_ip"] == "203.0.113.9"
    assert line["principal"] == "42"
    assert isinstance(line["duration_ms"], float)
    text = repr(line)
    for leaked in ("31337", "bst_secret", "hunter2", "api_key", "password"):
        assert leaked not in text


async def test_the_request_context_is_set_for_the_request_and_reset_after(
    metrics: Metrics,
) -> None:
    app = build_app(metrics)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=EDGE_SAYS
    ) as client:
        response = await client.get("/items/5", headers={"User-Agent": "probe/1.0"})
    assert response.status_code == 200
    context = app.state.seen["context"]
    assert context is not None
    assert (context.ip, context.user_agent, context.request_id) == (
        "203.0.113.9",
        "probe/1.0",
        "req-0001",
    )
    assert current_request.get() is None


async def test_a_long_user_agent_is_cut(metrics: Metrics) -> None:
    app = build_app(metrics)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=EDGE_SAYS
    ) as client:
        await client.get("/items/5", headers={"User-Agent": "x" * 5000})
    assert app.state.seen["context"].user_agent == "x" * 256


async def test_the_edges_own_answers_are_logged_and_counted_too(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    """A refused Host never reaches the app, yet it is a request like any other for the log
    and the counters (one line per request, SPEC §6)."""
    with capture_logs() as logs:
        response = await client.get("/items/1", headers={"Host": "evil.example"})
        await one_turn()
    assert response.status_code == 400
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert (line["status"], line["route"], line["request_id"]) == (400, UNMATCHED, "req-0001")
    assert (
        sample(metrics, "bastion_requests_total", method="GET", route=UNMATCHED, status="400") == 1
    )
