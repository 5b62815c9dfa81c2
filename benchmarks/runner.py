"""One benchmark run: every variant's server up, warmed, then measured in interleaved rounds.

Rounds interleave the variants (round 1 of each, then round 2 of each, …) so that a change in
the machine's load during the run spreads over all variants instead of landing on one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from benchmarks import report as rpt
from benchmarks.load import Load, Result, Wrk, ensure_wrk, wrk_version
from benchmarks.servers import (
    LOGIN,
    LOGIN_FORM,
    PASSWORD,
    REDIS_URL,
    USERNAME,
    VARIANTS,
    Server,
    SetupError,
    Variant,
    redis_available,
)


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    runs: int
    connections: int
    only: frozenset[str] | None
    login_connections: int
    flood_connections: int
    health_connections: int


HEALTH_PROBE_DELAY_MS = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpus() -> tuple[str | None, str | None]:
    """(server CPU, load-generator CPU): two distinct CPUs when ``taskset`` can pin, else none."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") and len(allowed) >= 2:
        return str(allowed[0]), str(allowed[1])
    return None, None


def run(options: Options) -> dict[str, Any]:
    server_cpu, load_cpu = cpus()
    if server_cpu is None:
        log("warning: taskset or a second CPU is missing; server and wrk are not pinned")
    wrk = Wrk(ensure_wrk(), pin=load_cpu)
    wanted = options.only
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "generated_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "settings": {
            "duration": options.duration,
            "warmup": options.warmup,
            "runs": options.runs,
            "connections": options.connections,
            "wrk_threads": 1,
            "login_connections": options.login_connections,
            "flood_connections": options.flood_connections,
            "health_connections": options.health_connections,
            "redis_url": REDIS_URL,
        },
        "machine": rpt.machine(wrk_version(wrk.binary), server_cpu, load_cpu),
        "versions": rpt.versions(),
        "load_average": {"start": list(os.getloadavg())},
        "variants": {},
    }
    try:
        selected = [v for v in VARIANTS if wanted is None or v.name in wanted]
        if selected:
            _throughput(selected, options, server_cpu, wrk, report)
        if wanted is None or "login" in wanted:
            report["login"] = _login(options, server_cpu, wrk)
    finally:
        wrk.close()
    report["load_average"]["end"] = list(os.getloadavg())
    rpt.add_ratios(report["variants"])
    report["targets"] = rpt.targets(report)
    return report


# -------------------------------------------------------------------------------- throughput


def _entry(variant: Variant) -> dict[str, Any]:
    return {
        "label": variant.label,
        "group": variant.group,
        "route": variant.path,
        "runs": [],
        "summary": {},
    }


def _throughput(
    selected: list[Variant],
    options: Options,
    server_cpu: str | None,
    wrk: Wrk,
    report: dict[str, Any],
) -> None:
    servers: list[Server] = []
    candidates: list[Server] = []
    results: dict[str, list[Result]] = {}
    load = Load(connections=options.connections, duration=options.duration)
    try:
        for variant in selected:
            entry = report["variants"][variant.name] = _entry(variant)
            if variant.needs_redis and not redis_available():
                entry["skipped"] = f"no Redis at {REDIS_URL}"
                log(f"{variant.name}: skipped, no Redis at {REDIS_URL}")
                continue
            # several workers are not pinned: they get both CPUs, which wrk shares with them
            candidates.append(Server(variant, server_cpu if variant.workers == 1 else None))
        log(f"starting {len(candidates)} servers …")
        # Starting is mostly waiting (imports, the user's password hash, the first login), so
        # the servers start side by side; nothing is measured until all of them are up.
        with ThreadPoolExecutor(max_workers=3) as pool:
            failures = list(pool.map(_start, candidates))
        for server, failure in zip(candidates, failures, strict=True):
            if failure is not None:
                report["variants"][server.variant.name]["skipped"] = f"setup failed: {failure}"
                log(f"{server.variant.name}: setup failed: {failure}\n{server.log_tail()}")
                server.stop()
                continue
            log(f"{server.variant.name}: {server.variant.factory} up on port {server.port}")
            servers.append(server)
            results[server.variant.name] = []

        for server in servers:
            if options.warmup > 0:
                warm = wrk.run(
                    server.target(), Load(connections=options.connections, duration=options.warmup)
                )
                log(f"{server.variant.name}: warm-up {warm.rps:,.0f} req/s" + _flag(warm))

        for round_no in range(1, options.runs + 1):
            for server in servers:
                result = _measured(server, wrk, load)
                results[server.variant.name].append(result)
                log(
                    f"run {round_no}/{options.runs} {server.variant.name}: {result.rps:,.0f} req/s"
                    f", p50 {result.latency_ms['p50']:.1f} ms, p99 {result.latency_ms['p99']:.1f}"
                    f" ms, load {os.getloadavg()[0]:.2f}" + _flag(result)
                )
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is not None:
                log(f"{server.variant.name} exited during the run:\n{server.log_tail()}")
        for server in candidates:  # every server started, even if its setup failed
            server.stop()
    for name, runs in results.items():
        entry = report["variants"][name]
        entry["runs"] = [r.as_dict() for r in runs]
        entry["summary"] = rpt.summarize(runs)


def _measured(server: Server, wrk: Wrk, load: Load) -> Result:
    """One measured run, with the server's CPU time per request over it."""
    before = server.cpu_seconds()
    result = wrk.run(server.target(), load)
    after = server.cpu_seconds()
    if before is None or after is None or not result.requests:
        return result
    return dataclasses.replace(result, server_cpu_us=(after - before) / result.requests * 1e6)


def _start(server: Server) -> str | None:
    try:
        server.start()
    except (SetupError, OSError, httpx.HTTPError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _flag(result: Result) -> str:
    if result.valid:
        return ""
    return f"  INVALID: unexpected {result.unexpected_statuses}, errors {result.errors}"


# ------------------------------------------------------------------------------------- login


def argon2_verify_ms(server_cpu: str | None, samples: int = 15) -> list[float]:
    """Argon2id verify times (ms) with Bastion's configured parameters, on the server's CPU."""
    from argon2 import PasswordHasher

    from bastion.settings import BastionSettings

    settings = BastionSettings()
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_cost,
        parallelism=settings.argon2_parallelism,
    )
    encoded = hasher.hash("correct horse battery staple")
    before = os.sched_getaffinity(0)
    if server_cpu is not None:
        os.sched_setaffinity(0, {int(server_cpu)})
    try:
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            hasher.verify(encoded, "correct horse battery staple")
            times.append(time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, before)
    return [t * 1000 for t in times]


def login_ceiling(verify_ms: list[float], cores: int) -> dict[str, Any]:
    """The login target from every verify sample of the run: 90% of ``cores`` ÷ their median.
    The samples are taken before the server starts and again before each measured round, on
    the same CPU, so that the ceiling comes from the same minutes as the logins it judges (on
    a shared VM one verify took 17.5 ms in one hour and 25.7 ms in the next)."""
    median = statistics.median(verify_ms)
    return {
        "argon2_verify_ms": round(median, 2),
        "argon2_verify_ms_range": [round(min(verify_ms), 2), round(max(verify_ms), 2)],
        "argon2_verify_samples": len(verify_ms),
        "logins_target": round(0.9 * cores / (median / 1000), 2),
    }


def _drain(server: Server) -> None:
    """Wait until the logins of the previous load are done: a server keeps hashing for a client
    that has gone, and that backlog must not count against the next run. Hashing is FIFO, so one
    more login answers when the backlog has drained."""
    server.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": USERNAME, "password": PASSWORD},
        timeout=120,
    )


def _login(options: Options, server_cpu: str | None, wrk: Wrk) -> dict[str, Any]:
    cores = 1 if server_cpu is not None else len(os.sched_getaffinity(0))
    verify_ms = argon2_verify_ms(server_cpu)
    section: dict[str, Any] = {
        "connections": options.login_connections,
        "flood_connections": options.flood_connections,
        "health_connections": options.health_connections,
        "health_probe_delay_ms": HEALTH_PROBE_DELAY_MS,
        "server_cores": cores,
        **login_ceiling(verify_ms, cores),
    }
    log(
        f"login: Argon2id verify {section['argon2_verify_ms']:.1f} ms on one core before the "
        f"server starts; target ≥ {section['logins_target']:.1f} logins/s (sampled again "
        "before each round)"
    )
    server = Server(LOGIN, server_cpu)
    if (failure := _start(server)) is not None:
        log(f"login: setup failed: {failure}\n{server.log_tail()}")
        server.stop()
        section["skipped"] = f"setup failed: {failure}"
        return section
    logins: list[Result] = []
    floods: list[Result] = []
    healths: list[Result] = []
    try:
        token = server.target(
            method="POST",
            body=LOGIN_FORM,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        # The probe stands for the rest of the traffic: each connection waits 10 ms between
        # two requests, so that it measures how long other routes wait while logins are being
        # hashed without itself taking the CPU that the hashing needs.
        health = server.target("/health", delay_ms=HEALTH_PROBE_DELAY_MS)
        if options.warmup > 0:
            warm = wrk.run(
                token,
                Load(connections=options.login_connections, duration=options.warmup, timeout=30),
            )
            log(f"login: warm-up {warm.rps:,.1f} logins/s" + _flag(warm))
        for round_no in range(1, options.runs + 1):
            _drain(server)  # no hash of the last round's may run while the verify is timed
            verify_ms += argon2_verify_ms(server_cpu, samples=5)
            result = wrk.run(
                token,
                Load(connections=options.login_connections, duration=options.duration, timeout=30),
            )
            logins.append(result)
            log(
                f"run {round_no}/{options.runs} login: {result.rps:,.1f} logins/s, "
                f"p50 {result.latency_ms['p50']:.0f} ms, load {os.getloadavg()[0]:.2f}"
                + _flag(result)
            )
        for round_no in range(1, options.runs + 1):
            _drain(server)
            lead = 1.0
            flood = wrk.start(
                token,
                Load(
                    connections=options.flood_connections,
                    duration=options.duration + 2 * lead,
                    timeout=60,
                ),
            )
            time.sleep(lead)
            checked = wrk.run(
                health,
                Load(
                    connections=options.health_connections,
                    duration=options.duration,
                    latency=True,
                ),
            )
            flooded = wrk.collect(
                flood, Load(connections=options.flood_connections, duration=0, timeout=120)
            )
            healths.append(checked)
            floods.append(flooded)
            log(
                f"run {round_no}/{options.runs} /health under flood: p50 "
                f"{checked.latency_ms['p50']:.1f} ms, p99 {checked.latency_ms['p99']:.1f} ms; "
                f"flood {flooded.rps:,.1f} logins/s, load {os.getloadavg()[0]:.2f}"
                + _flag(checked)
                + _flag(flooded)
            )
    finally:
        if server.process is not None and server.process.poll() is not None:
            log(f"login server exited during the run:\n{server.log_tail()}")
        server.stop()
    section.update(login_ceiling(verify_ms, cores))
    log(
        f"login: Argon2id verify median {section['argon2_verify_ms']:.1f} ms over "
        f"{len(verify_ms)} samples ({section['argon2_verify_ms_range'][0]:.1f}–"
        f"{section['argon2_verify_ms_range'][1]:.1f}); target ≥ {section['logins_target']:.1f}"
        " logins/s"
    )
    for key, runs in (("logins", logins), ("health_under_flood", healths), ("flood", floods)):
        section[key] = {"runs": [r.as_dict() for r in runs], "summary": rpt.summarize(runs)}
    return section
