"""Summaries, the markdown tables printed at the end, and the saved JSON and PNG."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from benchmarks.load import Result

PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "bastion",
    "pyjwt",
    "limits",
    "redis",
    "sqlalchemy",
    "argon2-cffi",
    "pwdlib",
    "fastapi-users",
    "fastapi-users-db-sqlalchemy",
    "authx",
    "slowapi",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(wrk_version: str, server_cpu: str | None, load_cpu: str | None) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "wrk": wrk_version,
        "server_cpu": server_cpu,
        "load_generator_cpu": load_cpu,
        "pinned": server_cpu is not None,
    }


# ---------------------------------------------------------------------------------- summaries


def summarize(runs: list[Result]) -> dict[str, Any]:
    """Median and range of requests/s over the runs; the median run's view of latency."""
    if not runs:
        return {"valid": False, "runs": 0}
    rps = [r.rps for r in runs]
    unexpected = sum(r.unexpected for r in runs)
    socket_errors = sum(r.socket_errors for r in runs)
    statuses: dict[str, int] = {}
    for r in runs:
        for status, n in r.unexpected_statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "runs": len(runs),
        "rps_median": round(statistics.median(rps), 1),
        "rps_min": round(min(rps), 1),
        "rps_max": round(max(rps), 1),
        "p50_ms": round(statistics.median(r.latency_ms["p50"] for r in runs), 2),
        "p99_ms": round(statistics.median(r.latency_ms["p99"] for r in runs), 2),
        "p99_ms_worst": round(max(r.latency_ms["p99"] for r in runs), 2),
        "requests": sum(r.requests for r in runs),
        **_cpu_summary(runs),
        "unexpected": unexpected,
        "unexpected_statuses": statuses,
        "socket_errors": socket_errors,
        "valid": all(r.valid for r in runs),
    }


def _cpu_summary(runs: list[Result]) -> dict[str, float]:
    """The server's CPU µs a request: the least of the runs (a busy neighbour or a slow core
    only ever adds to it) and their median."""
    cpu = [r.server_cpu_us for r in runs if r.server_cpu_us is not None]
    if not cpu:
        return {}
    return {"cpu_us_min": round(min(cpu), 1), "cpu_us_median": round(statistics.median(cpu), 1)}


def add_ratios(variants: dict[str, dict[str, Any]]) -> None:
    """Each variant's median over the baseline's median. An invalid variant keeps its ratio for
    the record, but the table and the targets never count it as met: errors are not speed."""
    base = variants.get("baseline", {}).get("summary", {})
    base_rps = base.get("rps_median") if base.get("valid") else None
    base_cpu = base.get("cpu_us_min") if base.get("valid") else None
    for entry in variants.values():
        summary = entry["summary"]
        if base_rps and summary.get("runs"):
            summary["ratio"] = round(summary["rps_median"] / base_rps, 3)
        else:
            summary["ratio"] = None
        cpu = summary.get("cpu_us_min")
        summary["cpu_ratio"] = round(base_cpu / cpu, 3) if base_cpu and cpu else None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 8's targets against this run's figures; ``met`` is None when a figure is missing,
    and False when the figure comes from runs with unexpected statuses."""
    v = {name: entry["summary"] for name, entry in report["variants"].items()}

    def ratio(name: str) -> tuple[float | None, bool]:
        s = v.get(name) or {}
        return s.get("ratio"), bool(s.get("valid"))

    def versus(a: str, b: str) -> tuple[float | None, bool]:
        sa, sb = v.get(a) or {}, v.get(b) or {}
        if not (sa.get("runs") and sb.get("runs")):
            return None, False
        return round(sa["rps_median"] / sb["rps_median"], 2), bool(sa["valid"] and sb["valid"])

    def figure(entry: dict[str, Any], key: str) -> tuple[float | None, bool]:
        s = entry.get("summary", {})
        return (s.get(key), bool(s.get("valid"))) if s.get("runs") else (None, False)

    login = report.get("login") or {}
    goal = login.get("logins_target")
    rows = [
        ("bearer route vs baseline", *ratio("bearer"), 0.75, "≥", "×"),
        ("API-key route vs baseline", *ratio("apikey"), 0.8, "≥", "×"),
        ("bearer route vs fastapi-users", *versus("bearer", "fastapi-users"), 10, "≥", "×"),
        ("bearer route vs AuthX", *versus("bearer", "authx"), 3, "≥", "×"),
        (
            "2 workers vs 1 on Redis (issue 7; wrk shares the 2nd core)",
            *versus("bearer-redis-2w", "bearer-redis"),
            1.7,
            "≥",
            "×",
        ),
        ("bearer on Redis vs in memory", *versus("bearer-redis", "bearer"), None, "≥", "×"),
        (
            "token-endpoint logins/s",
            *figure(login.get("logins", {}), "rps_median"),
            round(goal, 1) if goal else None,
            "≥",
            "/s",
        ),
        (
            "/health p99 under a 64-connection login flood (worst run)",
            *figure(login.get("health_under_flood", {}), "p99_ms_worst"),
            25,
            "<",
            " ms",
        ),
    ]
    out = []
    for name, value, valid, goal_value, op, unit in rows:
        met = None
        if value is not None and goal_value is not None:
            met = valid and (value >= goal_value if op == "≥" else value < goal_value)
        out.append(
            {
                "target": name,
                "goal": f"{op} {goal_value}{unit}" if goal_value is not None else "reported",
                "value": value,
                "valid": valid,
                "met": met,
            }
        )
    return out


# ------------------------------------------------------------------------------------- tables


def _n(value: float) -> str:
    return f"{value:,.0f}"


def variants_table(report: dict[str, Any]) -> str:
    lines = [
        "| variant | req/s (median) | min–max | p50 ms | p99 ms | × baseline"
        " | server CPU µs/req (least) | × baseline (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in report["variants"].values():
        s = entry["summary"]
        if entry.get("skipped"):
            lines.append(
                f"| {entry['label']} | — | — | — | — | skipped: {entry['skipped']} | — | — |"
            )
            continue
        if not s.get("runs"):
            lines.append(f"| {entry['label']} | — | — | — | — | failed | — | — |")
            continue
        ratio = f"{s['ratio']:.2f}×" if s.get("ratio") is not None else "—"
        if not s["valid"]:
            ratio = f"**invalid** ({ratio}): {_errors(s)}"
        cpu = f"{s['cpu_us_min']:.0f}" if s.get("cpu_us_min") is not None else "—"
        cpu_ratio = f"{s['cpu_ratio']:.2f}×" if s.get("cpu_ratio") is not None else "—"
        lines.append(
            f"| {entry['label']} | {_n(s['rps_median'])} | {_n(s['rps_min'])}–{_n(s['rps_max'])}"
            f" | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {ratio} | {cpu} | {cpu_ratio} |"
        )
    return "\n".join(lines)


def _errors(s: dict[str, Any]) -> str:
    parts = [f"{n}× {status}" for status, n in sorted(s.get("unexpected_statuses", {}).items())]
    if s.get("socket_errors"):
        parts.append(f"{s['socket_errors']} socket errors")
    return ", ".join(parts) or "no requests"


def login_table(report: dict[str, Any]) -> str:
    login = report.get("login")
    if not login:
        return ""
    lines = [
        "| login path | median | min–max | p50 ms | p99 ms | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = [
        (
            f"`POST /auth/token` logins/s ({login['connections']} connections)",
            login.get("logins"),
            f"target ≥ {login['logins_target']:.1f}/s (90% of {login['server_cores']} core"
            f" ÷ {login['argon2_verify_ms']:.1f} ms Argon2id verify{_verify_spread(login)})",
        ),
        (
            f"`GET /health` probe req/s ({login['health_connections']} connections, "
            f"{login.get('health_probe_delay_ms', 0)} ms pause) during a "
            f"{login['flood_connections']}-connection login flood",
            login.get("health_under_flood"),
            "p99 target < 25 ms (worst run: "
            f"{login.get('health_under_flood', {}).get('summary', {}).get('p99_ms_worst', 0):.1f}"
            " ms)",
        ),
        (
            "the flood itself, logins/s",
            login.get("flood"),
            f"{login['flood_connections']} connections, "
            f"{login.get('flood', {}).get('summary', {}).get('unexpected', 0)} non-200",
        ),
    ]
    for label, entry, note in rows:
        s = (entry or {}).get("summary", {})
        if not s.get("runs"):
            lines.append(f"| {label} | — | — | — | — | not run |")
            continue
        if not s["valid"]:
            note = f"**invalid**: {_errors(s)}"
        lines.append(
            f"| {label} | {s['rps_median']:,.1f} | {s['rps_min']:,.1f}–{s['rps_max']:,.1f}"
            f" | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {note} |"
        )
    return "\n".join(lines)


def targets_table(report: dict[str, Any]) -> str:
    lines = ["| target (issue 8) | goal | this run | met |", "| --- | --- | ---: | :---: |"]
    for t in report["targets"]:
        value = "—" if t["value"] is None else f"{t['value']:,}"
        met = {True: "yes", False: "**no**", None: "—"}[t["met"]]
        if t["value"] is not None and not t.get("valid", True):
            met += " (invalid: unexpected statuses)"
        lines.append(f"| {t['target']} | {t['goal']} | {value} | {met} |")
    return "\n".join(lines)


def header(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    pin = (
        f"server on CPU {m['server_cpu']}, wrk on CPU {m['load_generator_cpu']}"
        if m["pinned"]
        else "not pinned"
    )
    la = report["load_average"]
    return (
        f"{report['generated_at']} · {m['cpu_model']}, {m['nproc']} CPUs ({pin}) · "
        f"{m['wrk']} · Python {report['versions']['python']} · "
        f"{s['runs']} runs × {s['duration']} s after {s['warmup']} s warm-up, "
        f"{s['connections']} connections · load average {la['start'][0]:.2f} at start, "
        f"{la['end'][0]:.2f} at end"
    )


def markdown(report: dict[str, Any]) -> str:
    parts = [header(report), "", variants_table(report)]
    if report.get("login"):
        parts += ["", login_table(report)]
    parts += ["", targets_table(report)]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- saving


def save(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "latest.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    png_path = directory / "latest.png"
    chart(report, png_path)
    return json_path, png_path


COLOURS = {"baseline": "#7f7f7f", "bastion": "#1f77b4", "peer": "#ff7f0e"}


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in report["variants"].values() if e["summary"].get("runs")]
    labels = [e["label"] for e in entries]
    medians = [e["summary"]["rps_median"] for e in entries]
    low = [e["summary"]["rps_median"] - e["summary"]["rps_min"] for e in entries]
    high = [e["summary"]["rps_max"] - e["summary"]["rps_median"] for e in entries]
    colours = [COLOURS[e["group"]] if e["summary"]["valid"] else "#d62728" for e in entries]

    fig, ax = plt.subplots(figsize=(10, 0.55 * len(entries) + 2.2))
    y = list(range(len(entries)))[::-1]
    ax.barh(y, medians, xerr=[low, high], color=colours, capsize=3)
    ax.set_yticks(y, labels)
    ax.set_xlabel("requests/s (median of runs; bars show min–max)")
    for yi, e in zip(y, entries, strict=True):
        s = e["summary"]
        text = (
            f" {s['rps_median']:,.0f}/s"
            + (f"  {s['ratio']:.2f}×" if s.get("ratio") is not None else "")
            + ("" if s["valid"] else "  INVALID")
        )
        ax.text(s["rps_max"], yi, text, va="center", fontsize=8)
    ax.set_xlim(0, max([*medians, 1]) * 1.35)
    from matplotlib.patches import Patch

    legend = [Patch(color=c, label=g) for g, c in COLOURS.items()]
    legend.append(Patch(color="#d62728", label="invalid (unexpected statuses)"))
    ax.legend(handles=legend, loc="lower right", fontsize=8)
    login = report.get("login") or {}
    subtitle = ""
    if login:
        logins = login.get("logins", {}).get("summary", {})
        health = login.get("health_under_flood", {}).get("summary", {})
        if logins.get("runs") and health.get("runs"):
            subtitle = (
                f"\nlogins/s {logins['rps_median']:.1f} (target ≥ {login['logins_target']:.1f}); "
                f"/health under a {login['flood_connections']}-connection login flood: "
                f"p50 {health['p50_ms']:.1f} ms, p99 {health['p99_ms']:.1f} ms"
            )
    m = report["machine"]
    ax.set_title(
        f"One uvicorn worker on one CPU · {m['cpu_model']} · {report['generated_at'][:10]}"
        + subtitle,
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verify_spread(login: dict[str, Any]) -> str:
    """How many verifies the ceiling's median comes from, and their range (newer runs)."""
    spread = login.get("argon2_verify_ms_range")
    if not spread:
        return ""
    return f", median of {login['argon2_verify_samples']}: {spread[0]:.1f}–{spread[1]:.1f} ms"
