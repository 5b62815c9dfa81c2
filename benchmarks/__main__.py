"""``python -m benchmarks [--duration S] [--warmup S] [--runs N] [--only a,b]``.

The peers (fastapi-users, AuthX, slowapi) and matplotlib are in the ``bench`` dependency group,
which pins older SQLAlchemy and pwdlib than Bastion's own environment. Started from any other
environment (``./dev python -m benchmarks``, ``uv run python -m benchmarks``), the command runs
itself again in ``.venv-bench/`` with that group, leaving the project's ``.venv/`` untouched.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_MODULES = ("fastapi_users", "authx", "slowapi", "matplotlib", "httpx")
NAMES = (
    "baseline",
    "public",
    "public-redis",
    "bearer",
    "apikey",
    "session",
    "bearer-redis",
    "bearer-redis-2w",
    "fastapi-users",
    "authx",
    "slowapi",
    "login",
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Bastion's request cost against plain FastAPI and the peers, in one run.",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per variant")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per variant")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--only",
        type=lambda s: frozenset(x.strip() for x in s.split(",") if x.strip()),
        default=None,
        help=f"comma-separated subset of: {','.join(NAMES)}",
    )
    parser.add_argument("--login-connections", type=int, default=4)
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument("--health-connections", type=int, default=2)
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="where latest.json and latest.png go",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: print the tables of RESULTS/latest.json and redraw its chart",
    )
    args = parser.parse_args(argv)
    if args.only is not None and (unknown := args.only - set(NAMES)):
        parser.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    if args.runs < 1 or args.duration < 1:
        parser.error("--runs and --duration must be at least 1")
    return args


def _in_bench_environment() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in BENCH_MODULES)


def _rerun_in_bench_environment(argv: list[str]) -> None:
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if os.environ.get("BENCH_REEXEC") or not Path(uv).exists():
        sys.exit(
            "the benchmark needs the 'bench' dependency group: "
            "uv run --no-dev --group bench python -m benchmarks"
        )
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(ROOT / ".venv-bench"),
        "BENCH_REEXEC": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    cmd = [uv, "run", "--locked", "--no-dev", "--group", "bench"]
    cmd += ["python", "-m", "benchmarks", *argv]
    print("running in .venv-bench/ with the 'bench' dependency group", file=sys.stderr)
    os.chdir(ROOT)
    os.execvpe(cmd[0], cmd, env)  # noqa: S606 - argv built above, no shell


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if not _in_bench_environment():
        _rerun_in_bench_environment(argv)

    from benchmarks import report as rpt
    from benchmarks.runner import Options, run

    if args.render_only:
        result = json.loads((args.results / "latest.json").read_text(encoding="utf-8"))
        rpt.add_ratios(result["variants"])
        result["targets"] = rpt.targets(result)
        rpt.save(result, args.results)
        print(rpt.markdown(result))
        return 0

    result = run(
        Options(
            duration=args.duration,
            warmup=args.warmup,
            runs=args.runs,
            connections=args.connections,
            only=args.only,
            login_connections=args.login_connections,
            flood_connections=args.flood_connections,
            health_connections=args.health_connections,
        )
    )
    json_path, png_path = rpt.save(result, args.results)
    print(rpt.markdown(result))
    print(f"\nsaved {json_path} and {png_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
