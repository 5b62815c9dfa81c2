"""A team's own FastAPI app protected by Bastion: the shape of SPEC §1.1, runnable as it is.

From the repository root::

    uv run bastion createuser alice --admin                     # asks for the password
    uv run uvicorn examples.reports_app:app --no-proxy-headers  # http://127.0.0.1:8000/docs

(``--no-proxy-headers``: Bastion's edge decides whom to believe about ``X-Forwarded-For``,
from ``BASTION_TRUSTED_PROXIES``.)

Settings come from the ``BASTION_*`` variables, exactly as for ``bastion serve`` (the same
``./bastion-data/`` by default, so users created with the CLI can log in here). Importing this
module only builds the app: the database is opened, and migrated, by the lifespan.

``user: Annotated[Principal, bastion.require(...)]`` is the same dependency as SPEC §1.1's
``user: Principal = bastion.require(...)``, in the form linters (ruff's B008) prefer.
"""

from typing import Annotated, Any

from fastapi import FastAPI

from bastion import Bastion, Principal

ROLES: dict[str, list[str]] = {
    "user": ["reports:read", "keys:manage"],
    "admin": ["*"],
}
"""Role → scopes (SPEC §4.7). ``reports:read`` is this app's own scope, so the app says who holds
it: every user may read reports (and manage their API keys), and ``admin`` (``*``) holds every
scope the app knows. The mapping is part of the app, so it is given in code; every other setting
still comes from the environment."""

bastion = Bastion.from_env(roles=ROLES)
app = FastAPI(title="Reports (a Bastion example)", lifespan=bastion.lifespan)
bastion.protect(app)  # edge middleware, problem+json errors, /auth routes, local /docs


@app.get("/hello")
async def hello() -> dict[str, str]:
    """Public: no requirement is declared, so anyone may call it."""
    return {"message": "Hello, anyone"}


@app.get("/reports")
async def reports(
    user: Annotated[Principal, bastion.require("reports:read", schemes=("bearer", "api_key"))],
) -> dict[str, Any]:
    """Needs the ``reports:read`` scope, from a bearer token or an API key."""
    return {
        "reports": [{"id": 1, "title": "Quarterly numbers"}],
        "for": user.username,
        "auth": user.kind,
    }


@app.get("/admin/summary")
async def admin_summary(
    user: Annotated[Principal, bastion.require(roles=["admin"], schemes=("bearer",))],
) -> dict[str, str]:
    """Needs the ``admin`` role, and takes bearer tokens only (keys and sessions refused)."""
    return {"summary": "all systems nominal", "admin": user.username, "auth": user.kind}
