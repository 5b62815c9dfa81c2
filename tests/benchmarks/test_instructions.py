"""``python -m benchmarks.instructions``: reading callgrind's dumps and the table it prints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from benchmarks.instructions import _requester, run_requests, table, totals_of
from sqlalchemy import func, select

from bastion.storage.models import RefreshFamily

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  python -m benchmarks.instructions --measure
part: 2
desc: Trigger: Client Request: measured
events: Ir
summary: 0
fn=(1) main
0 5
totals: 210000000
"""


def test_the_count_of_a_dump_is_its_totals_line() -> None:
    assert totals_of(DUMP) == 210_000_000


def test_a_dump_without_totals_is_refused() -> None:
    with pytest.raises(ValueError, match="no totals"):
        totals_of("events: Ir\nfn=(1) main\n")


def test_the_table_gives_per_request_counts_and_ratios_to_the_first_case() -> None:
    printed = table([("fastapi-hello", 100_000_000), ("bearer", 200_000_000)], requests=300)
    rows = [line.split() for line in printed.splitlines()[1:]]
    assert rows == [["fastapi-hello", "333.3", "1.000×"], ["bearer", "666.7", "0.500×"]]


async def test_the_measured_requests_include_the_turns_of_the_loop_they_leave_work_for() -> None:
    """What a request leaves for the end of its turn (Bastion's request log) runs before the
    measured requests are over, the loop turning every ``batch`` requests."""
    loop = asyncio.get_running_loop()
    ran: list[int] = []
    ran_before: list[int] = []

    async def one() -> None:
        ran_before.append(len(ran))
        loop.call_soon(ran.append, len(ran_before))

    await run_requests(one, 7, 3)
    assert ran == [1, 2, 3, 4, 5, 6, 7]  # all of it, the last request's too
    assert ran_before == [0, 0, 0, 3, 3, 3, 6]  # a turn after every third request


async def test_the_login_case_is_a_password_grant_that_the_token_endpoint_grants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--routes login`` counts real logins: the request it sends is a password grant that
    Bastion's benchmark app answers with tokens, and a refused one stops the run instead of
    being counted as a login."""
    from bastion import logs
    from benchmarks import apps, servers

    for name, value in {**servers.BASTION_ENV, **servers.LOGIN.env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BASTION_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("BASTION_ARGON2_MEMORY_COST", "1024")
    # not the production logging: its loggers, cached on first use, would outlive this test
    monkeypatch.setattr(logs, "configure_logging", lambda *_args, **_kwargs: None)
    app = apps.bastion_app()
    async with app.router.lifespan_context(app):
        bastion = app.state.bastion
        await bastion.accounts.create_user(servers.USERNAME, servers.PASSWORD)
        extra = [(b"content-type", b"application/x-www-form-urlencoded")]
        await _requester(app, "login", extra)()  # a 200, or SystemExit
        grants = await bastion.db.run(
            lambda s: s.scalar(select(func.count()).select_from(RefreshFamily))
        )
        assert grants == 1
        monkeypatch.setattr(servers, "LOGIN_FORM", servers.LOGIN_FORM + "x")  # a wrong password
        with pytest.raises(SystemExit, match="POST /auth/token answered 400"):
            await _requester(app, "login", extra)()
