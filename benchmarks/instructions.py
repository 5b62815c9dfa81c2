"""``python -m benchmarks.instructions``: CPU instructions per request, counted by callgrind.

On a shared VM the timings of two runs a minute apart differ by more than most changes to the hot
path are worth; instruction counts do not (the same code gives the same count to within a
percent, whatever else the machine does). So a change is judged here first, in-process: the
baseline and Bastion's benchmark apps (``benchmarks.apps``) are called as ASGI apps, with no HTTP
server and no load generator, under ``valgrind --tool=callgrind`` with instrumentation switched
on only around each route's measured requests, through callgrind's client requests (a tiny C
shim, compiled on first use). Instructions are not time (a cache miss or a system call is not
counted as what it costs), which is why ``python -m benchmarks`` remains the figure to report.

Periodic work (re-reading user state every 0.5 s, polling revocations) is switched off: under
valgrind a request takes fifty times longer, so that work would be charged to far fewer requests
than on a real server. valgrind and gcc come from Debian's packages (installed when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("hello", "bearer", "key", "session", "login")
DEFAULT_ROUTES = ("hello", "bearer", "key", "session")
SHIM = """#include <valgrind/callgrind.h>
void bench_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void bench_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT("measured"); }
"""
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def totals_of(dump: str) -> int:
    """The instruction count of one callgrind dump (the largest of its summary lines)."""
    counts = [int(found) for found in _TOTALS.findall(dump)]
    if not counts:
        raise ValueError("no totals in this callgrind dump")
    return max(counts)


def table(cases: list[tuple[str, int]], requests: int) -> str:
    """``case  k instructions/request  ratio``; the first case is the baseline."""
    if not cases:
        return ""
    base = cases[0][1] / requests
    lines = [f"{'case':<16} {'k instr/request':>16} {'× baseline':>11}"]
    for name, total in cases:
        per = total / requests
        lines.append(f"{name:<16} {per / 1000:>16.1f} {base / per:>10.3f}×")
    return "\n".join(lines)


def _ensure(tool: str, package: str) -> None:
    if shutil.which(tool):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(f"{tool} is not installed: apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=True)


def _shim(directory: Path) -> Path:
    source, library = directory / "shim.c", directory / "shim.so"
    source.write_text(SHIM)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    return library


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument(
        "--routes",
        default=",".join(DEFAULT_ROUTES),
        help="of: " + ",".join(ROUTES) + " (login: POST /auth/token, its hash replaced by a no-op)",
    )
    parser.add_argument("--requests", type=int, default=300, help="measured requests per route")
    parser.add_argument("--warmup", type=int, default=200, help="requests before measuring")
    parser.add_argument(
        "--batch",
        type=int,
        default=32,
        help="requests between turns of the event loop (the request log writes once a turn)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="copy each case's callgrind dump here (<case>.callgrind), for callgrind_annotate",
    )
    args = parser.parse_args(argv)
    routes = [r for r in args.routes.split(",") if r]
    if unknown := set(routes) - set(ROUTES):
        parser.error(f"unknown routes: {', '.join(sorted(unknown))}")
    _ensure("valgrind", "valgrind")
    _ensure("gcc", "gcc")
    with tempfile.TemporaryDirectory(prefix="bastion-instructions-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "BENCH_SHIM": str(_shim(work)),
            "BENCH_WORK": str(work),
            "BENCH_ROUTES": ",".join(routes),
            "BENCH_REQUESTS": str(args.requests),
            "BENCH_WARMUP": str(args.warmup),
            "BENCH_BATCH": str(max(1, args.batch)),
        }
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={work / 'callgrind.out'}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--measure",
        ]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        names = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("case ")]
        if done.returncode != 0 or len(names) != len(routes) + 1:
            sys.exit(f"the measured run failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        dumps = sorted(work.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        cases = [(n, totals_of(d.read_text())) for n, d in zip(names, dumps, strict=True)]
        print(table(cases, args.requests))
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name, dump in zip(names, dumps, strict=True):
                shutil.copyfile(dump, args.keep / f"{name}.callgrind")


# -------------------------------------------------------------- inside valgrind (--measure)


def _steady_state() -> None:
    """No periodic re-reads (see the module's docstring)."""
    from bastion import staleness
    from bastion.tokens import revocation_sync

    cache_init = staleness.StaleCache.__init__
    sync_init = revocation_sync.RevocationSync.__init__

    def cache(self: Any, **kwargs: Any) -> None:
        cache_init(self, **{**kwargs, "ttl": 1e9})

    def sync(self: Any, *args: Any, **kwargs: Any) -> None:
        sync_init(self, *args, **{**kwargs, "interval": 1e9})

    staleness.StaleCache.__init__ = cache  # type: ignore[method-assign]
    revocation_sync.RevocationSync.__init__ = sync  # type: ignore[method-assign]


def _prepare() -> None:
    """The benchmark servers' environment and user, in the run's own data directory."""
    from benchmarks import servers

    work = Path(os.environ["BENCH_WORK"])
    os.environ.update(servers.BASTION_ENV)
    os.environ.update(servers.LOGIN.env)  # the login limit and lockout raised, as on its server
    os.environ.update(
        {"BASTION_DATA_DIR": str(work), "BENCH_DATA_DIR": str(work), "BENCH_SECRET": servers.SECRET}
    )
    subprocess.run(
        [sys.executable, "-m", "bastion", "createuser", servers.USERNAME, "--password-stdin"],
        input=servers.PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


async def _measure() -> None:
    from benchmarks import apps

    work = Path(os.environ["BENCH_WORK"])
    # Bastion's JSON log lines go to a file, as on the benchmark's servers, not to our output.
    log = (work / "server.log").open("w")
    os.dup2(log.fileno(), 2)
    _steady_state()
    shim = ctypes.CDLL(os.environ["BENCH_SHIM"])
    baseline, bastion = apps.baseline_app(), apps.bastion_app()
    async with bastion.router.lifespan_context(bastion):
        credentials = await _credentials(httpx.ASGITransport(app=bastion))
        cases = [("fastapi-hello", baseline, "hello")] + [
            (route, bastion, route) for route in os.environ["BENCH_ROUTES"].split(",")
        ]
        batch = int(os.environ["BENCH_BATCH"])
        for name, app, route in cases:
            if route == "login":
                _no_hash()
            one = _requester(app, route, credentials.get(route, []))
            await run_requests(one, int(os.environ["BENCH_WARMUP"]), batch)
            shim.bench_start()
            await run_requests(one, int(os.environ["BENCH_REQUESTS"]), batch)
            shim.bench_stop()
            print("case", name, flush=True)


def _no_hash() -> None:
    """A login's work outside its Argon2id hash: the hash itself is the same instructions
    whatever the rest does (and, under valgrind, most of a run's time), so it is left out."""
    from bastion.passwords import PasswordHasher

    async def verify(self: Any, password: str, password_hash: str) -> tuple[bool, None]:
        return True, None

    PasswordHasher.verify = verify  # type: ignore[method-assign]


async def run_requests(one: Callable[[], Awaitable[None]], count: int, batch: int) -> None:
    """``count`` requests, the event loop turning after every ``batch`` of them and after the
    last: Bastion writes its request log once a turn, for the requests that ended in it, so
    without the turns that work would fall outside the measured requests. Under ``wrk``'s 32
    connections at most 32 requests end in one turn (58 were seen on average with 64)."""
    for n in range(1, count + 1):
        await one()
        if n % batch == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)


async def _credentials(
    transport: httpx.AsyncBaseTransport,
) -> dict[str, list[tuple[bytes, bytes]]]:
    from benchmarks import servers

    login = {"username": servers.USERNAME, "password": servers.PASSWORD}
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        form = {"grant_type": "password", **login}
        token = (await client.post("/auth/token", data=form)).json()["access_token"]
        bearer = f"Bearer {token}"
        key = await client.post(
            "/auth/keys", json={"name": "instructions"}, headers={"Authorization": bearer}
        )
        session = await client.post("/auth/session", json=login)
    cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    return {
        "login": [(b"content-type", b"application/x-www-form-urlencoded")],
        "bearer": [(b"authorization", bearer.encode())],
        "key": [(b"x-api-key", key.json()["key"].encode())],
        "session": [(b"cookie", cookie.encode())],
    }


def _requester(
    app: Callable[..., Awaitable[None]], route: str, extra: list[tuple[bytes, bytes]]
) -> Callable[[], Awaitable[None]]:
    """One GET of ``/route`` (for ``login``, a password grant's POST to the token endpoint) as
    uvicorn would hand it over; anything but a 200 stops the run."""
    from benchmarks import servers

    path, method, body = "/" + route, "GET", b""
    if route == "login":
        path, method, body = "/auth/token", "POST", servers.LOGIN_FORM.encode()
        extra = [*extra, (b"content-length", str(len(body)).encode())]
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*"), *extra]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"{method} {path} answered {message['status']}")

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": list(headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)

    return one


if __name__ == "__main__":
    if "--measure" in sys.argv:
        _prepare()
        asyncio.run(_measure())
    else:
        main()
