"""Prometheus metrics (SPEC §6): requests, latency, authentication outcomes, limits, events.

Each :class:`Metrics` owns its registry, so several apps (and tests) in one process never share
counters. When several workers run, ``PROMETHEUS_MULTIPROC_DIR`` (read by prometheus-client
itself) makes each write its counters to files that a scrape aggregates (multiprocess mode).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_CACHED_SERIES = 10_000
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self._multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bastion_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bastion_request_duration_seconds",
            "Request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.authentications = Counter(
            "bastion_authentications",
            "Authentication outcomes by scheme.",
            ["scheme", "outcome"],
            registry=self.registry,
        )
        self.security_events = Counter(
            "bastion_security_events",
            "Security events by type and outcome (SPEC §6).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "bastion_rate_limited",
            "Requests refused by a rate limit, by policy.",
            ["policy"],
            registry=self.registry,
        )
        self.degraded = Counter(
            "bastion_degraded_decisions",
            "Decisions taken while a backing service was down, by component and mode.",
            ["component", "mode"],
            registry=self.registry,
        )
        self.active_sessions = Gauge(
            "bastion_active_sessions",
            "Cookie sessions neither revoked nor expired, as last counted in the database.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        """Set, never incremented, from a COUNT every worker runs (see ``SessionService``):
        each worker's value is the whole database's, so a scrape takes the most recent one
        instead of summing workers, and a dead worker's old count is soon outdated."""
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._authentication_children: dict[tuple[str, str], Counter] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request, counted and timed. The labelled children are kept: looking them up
        through ``labels()`` costs microseconds on every request. A method outside HTTP's own
        is counted as ``OTHER``: clients choose it, and each new one would be a new series."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            label = method if method in HTTP_METHODS else "OTHER"
            children = (self.requests.labels(label, route, str(status)), self.latency.labels(route))
            if len(self._request_children) < MAX_CACHED_SERIES:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_authentication(self, scheme: str, outcome: str) -> None:
        """One authentication outcome (``bastion_authentications``), child kept as above."""
        key = (scheme, outcome)
        child = self._authentication_children.get(key)
        if child is None:
            child = self._authentication_children[key] = self.authentications.labels(
                scheme, outcome
            )
        child.inc()

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape reads: this process's registry, or every worker's in multiprocess mode."""
        if self._multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            return registry
        return self.registry

    def exposition(self) -> bytes:
        return generate_latest(self.scrape_registry())

    def serve(self, address: str) -> Callable[[], None] | None:
        """Serve ``/metrics`` without credentials on ``host:port`` in a thread; returns how to
        stop it. With several workers the first to bind serves everyone's counters (multiprocess
        mode); the others find the port taken and leave it to that one."""
        host, _, port = address.rpartition(":")
        try:
            server, thread = start_http_server(int(port), host, registry=self.scrape_registry())
        except OSError:
            return None

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop
