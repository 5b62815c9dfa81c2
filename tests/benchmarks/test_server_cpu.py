"""The server's CPU time per request, read from ``/proc`` around each measured run: the
benchmark's second figure, steadier than requests/s on a machine whose speed moves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.load import Result
from benchmarks.report import add_ratios, summarize
from benchmarks.servers import cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc here")

# A parent that only waits, and a worker of it that burns half a second of CPU, then waits too
# (a uvicorn supervisor and its worker): the worker's time is what the parent's figure is for.
TREE = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", '''
import sys, time
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
print("burnt", flush=True)
time.sleep(30)
'''], stdout=sys.stdout)
time.sleep(30)
"""


def test_the_cpu_of_a_server_counts_its_workers() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "burnt"
        total = cpu_seconds(parent.pid)
        assert total is not None
        assert total >= 0.45
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_a_process_gone_has_no_figure() -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert cpu_seconds(finished.pid) is None


def run(rps: float, cpu_us: float | None) -> Result:
    return Result(
        requests=int(rps * 10),
        seconds=10.0,
        unexpected=0,
        unexpected_statuses={},
        errors={},
        latency_ms={"p50": 1.0, "p99": 2.0},
        server_cpu_us=cpu_us,
    )


def test_the_cpu_figure_is_the_least_of_the_runs_and_its_ratio_the_baselines_over_it() -> None:
    variants = {
        "baseline": {"summary": summarize([run(1000, 55), run(900, 50), run(1100, 60)])},
        "bearer": {"summary": summarize([run(500, 120), run(450, 100), run(480, 110)])},
        "unmeasured": {"summary": summarize([run(700, None)])},
    }
    add_ratios(variants)
    bearer = variants["bearer"]["summary"]
    assert (bearer["cpu_us_min"], bearer["cpu_us_median"]) == (100, 110)
    assert bearer["cpu_ratio"] == 0.5
    assert bearer["ratio"] == 0.48
    assert variants["unmeasured"]["summary"]["cpu_ratio"] is None
    assert "cpu_us_min" not in variants["unmeasured"]["summary"]
