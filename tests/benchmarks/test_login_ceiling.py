"""The login target is judged against verify times from the same minutes as the logins."""

from __future__ import annotations

from benchmarks.report import login_table
from benchmarks.runner import login_ceiling


def test_the_ceiling_is_the_median_of_every_sample_not_the_first_ones() -> None:
    # a VM that slowed down for the first samples, before the server started
    before_start, before_rounds = [25.7, 25.9, 26.1], [18.0, 18.2, 17.9, 18.1, 18.3, 17.8]
    samples = [*before_start, *before_rounds]
    ceiling = login_ceiling(samples, cores=1)
    assert ceiling["argon2_verify_ms"] == 18.2
    assert ceiling["argon2_verify_ms_range"] == [17.8, 26.1]
    assert ceiling["argon2_verify_samples"] == 9
    assert ceiling["logins_target"] == 49.45  # 0.9 ÷ 18.2 ms, not 0.9 ÷ 25.9 ms (34.7)


def test_the_target_scales_with_the_server_cores() -> None:
    assert login_ceiling([20.0], cores=2)["logins_target"] == 90.0


def test_the_report_names_the_samples_and_their_range() -> None:
    login = {
        "connections": 4,
        "flood_connections": 64,
        "health_connections": 2,
        "server_cores": 1,
        **login_ceiling([20.0, 22.0, 21.0], cores=1),
        "logins": {
            "summary": {
                "runs": 3,
                "valid": True,
                "rps_median": 40.0,
                "rps_min": 39.0,
                "rps_max": 41.0,
                "p50_ms": 100.0,
                "p99_ms": 150.0,
            }
        },
    }
    table = login_table({"login": login})
    [row] = [line for line in table.splitlines() if "/auth/token" in line]
    assert "| 40.0 | 39.0–41.0 |" in row
    assert "target ≥ 42.9/s" in row
    assert "÷ 21.0 ms Argon2id verify, median of 3: 20.0–22.0 ms" in row
