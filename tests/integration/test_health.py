"""Public routes: ``/public``, ``/health``, ``/ready`` (SPEC §4.1)."""

from __future__ import annotations

from tests.conftest import Harness


async def test_public_is_open_to_anyone(harness: Harness) -> None:
    response = await harness.client.get("/public")

    assert response.status_code == 200
    assert response.json() == {"message": "Anyone can see this"}


async def test_public_ignores_a_bad_token(harness: Harness) -> None:
    response = await harness.client.get("/public", headers={"Authorization": "Bearer nonsense"})

    assert response.status_code == 200
    assert response.json() == {"message": "Anyone can see this"}


async def test_health_answers_while_the_process_runs(harness: Harness) -> None:
    response = await harness.client.get("/health")

    assert response.status_code == 200


async def test_ready_reports_the_database(harness: Harness) -> None:
    response = await harness.client.get("/ready")

    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"
