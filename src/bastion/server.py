"""The reference server of SPEC §4: ``create_app(settings)``; no module-level app, so that tests
and workers each build their own from explicit settings."""

from __future__ import annotations

from fastapi import FastAPI

from bastion.api import admin as admin_api
from bastion.api import health as health_api
from bastion.api import items as items_api
from bastion.api import metrics as metrics_api
from bastion.core import Bastion, with_development_secret
from bastion.logs import configure_logging
from bastion.settings import BastionSettings


def create_app(settings: BastionSettings | None = None, bastion: Bastion | None = None) -> FastAPI:
    """The reference API: ``/auth``, ``/items``, ``/secure-data``, health and docs."""
    if bastion is None:
        bastion = (
            Bastion(with_development_secret(settings))
            if settings is not None
            else Bastion.from_env()
        )
    docs = bastion.settings.docs
    app = FastAPI(
        title="Bastion reference API",
        version="0.1.0",
        lifespan=bastion.lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    bastion.protect(app)
    app.include_router(health_api.reference_router)
    app.include_router(items_api.router)
    app.include_router(admin_api.router)
    app.include_router(metrics_api.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: each worker builds its app from the environment, and
    configures its own logging (workers are new processes: the parent's setup is not theirs)."""
    bastion = Bastion.from_env()
    configure_logging(bastion.settings)
    return create_app(bastion=bastion)
