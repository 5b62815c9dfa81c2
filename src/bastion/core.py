"""The :class:`Bastion` object: builds the parts from settings and installs them on an app.

Wiring only; every rule lives in the module that owns it (SPEC §1.1).
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute

from bastion.accounts import Accounts
from bastion.admin import Administration
from bastion.api import auth as auth_api
from bastion.api import dependencies
from bastion.api import health as health_api
from bastion.api import keys as keys_api
from bastion.api.docs import docs_routes, remove_fastapi_docs
from bastion.api.guarded import GuardedRoute
from bastion.api.openapi import install_openapi
from bastion.api.routing import RouteGroup
from bastion.audit.log_records import redact_loggers
from bastion.audit.metrics import Metrics
from bastion.audit.observer import IPLimitObserver, RefusalObserver
from bastion.audit.recorder import AuditRecorder
from bastion.audit.requests import RequestLog
from bastion.authn import Authenticator
from bastion.derived_keys import derive_key
from bastion.edge.middleware import EdgeMiddleware
from bastion.errors import install_error_handlers
from bastion.key_service import ApiKeyService
from bastion.lockout import Lockout
from bastion.logs import configure_logging
from bastion.passwords import PasswordHasher
from bastion.ratelimit.addresses import LimitKeys
from bastion.ratelimit.ip_limit import IPLimit
from bastion.ratelimit.limiter import Limiter, storage_for
from bastion.ratelimit.policies import Policy
from bastion.sessions import SessionService
from bastion.settings import BastionSettings, generate_secret
from bastion.storage.db import Database
from bastion.tokens.grants import TokenService
from bastion.tokens.jwt import AccessTokenCodec
from bastion.tokens.keys import KeySet
from bastion.tokens.revocation import MemoryRevocationList
from bastion.tokens.revocation_sync import RevocationSync
from bastion.user_state import UserStateCache

logger = structlog.get_logger("bastion")

DEV_SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


class ConfigurationError(Exception):
    """The settings are unsafe or unusable; ``findings`` names every setting at fault."""

    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = list(findings)
        super().__init__("; ".join(self.findings))


class Bastion:
    """One protected application's security layer."""

    def __init__(self, settings: BastionSettings) -> None:
        if settings.is_production and (findings := settings.production_findings()):
            raise ConfigurationError(findings)
        self.settings = settings
        self.keys = KeySet.from_settings(settings)
        self.db = Database(
            settings.effective_database_url,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        )
        self.metrics = Metrics(settings.prometheus_multiproc_dir)
        self.request_log = RequestLog(self.metrics)
        """Every request's log line and counters, written once per turn of the event loop."""
        self.audit = AuditRecorder(self.db, self.metrics)
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.password_hash_concurrency,
            queue_size=settings.password_hash_queue,
        )
        self.users = UserStateCache(self.db)
        self.revocations = MemoryRevocationList()
        self.codec = AccessTokenCodec(
            self.keys,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl_seconds=settings.access_token_ttl,
        )
        if settings.secret_key is None:
            raise ConfigurationError(
                ["BASTION_SECRET_KEY is not set: API-key, CSRF and session keys derive from it"]
            )
        root_secret = settings.secret_key.get_secret_value().encode()
        self.api_keys = ApiKeyService(
            self.db, derive_key(root_secret, "api-key-pepper"), self.audit
        )
        self.sessions = SessionService(
            self.db,
            self.audit,
            touch_every=min(60.0, settings.session_idle_seconds / 4),
            idle_seconds=settings.session_idle_seconds,
            absolute_seconds=settings.session_absolute_seconds,
            report_live=self.metrics.active_sessions.set,
        )
        self.csrf_key = derive_key(root_secret, "csrf")
        self.authenticator = Authenticator(
            settings,
            self.codec,
            self.revocations,
            self.users,
            self.api_keys,
            self.sessions,
            self.csrf_key,
        )
        self.lockout = Lockout(
            self.db,
            threshold=settings.lockout_threshold,
            window_seconds=settings.lockout_window,
            base_lock_seconds=settings.lockout_base_seconds,
            max_lock_seconds=settings.lockout_max_seconds,
        )
        self.accounts = Accounts(self.db, self.hasher, self.users, self.lockout, self.audit)
        self.limiter = Limiter(
            storage_for(
                settings.redis_url,
                key_prefix=settings.redis_prefix,
                timeout=settings.redis_timeout,
                pool_size=settings.redis_pool_size,
            ),
            strategy=settings.ratelimit_strategy,
            on_degraded=lambda mode: self.metrics.degraded.labels("ratelimit", mode).inc(),
        )
        self.ip_policy = Policy.parse("ip", settings.ratelimit_ip)
        self.limit_keys = LimitKeys(settings.ratelimit_ipv6_prefix)
        self.principal_policy = Policy.parse("principal", settings.ratelimit_principal)
        self.login_policy = Policy.parse("login", settings.ratelimit_login)
        self.revocation_sync = RevocationSync(
            self.db,
            self.revocations,
            access_ttl=settings.access_token_ttl,
            on_failure=lambda: self.metrics.degraded.labels("revocation_sync", "stale").inc(),
        )
        self.tokens = TokenService(
            settings, self.db, self.codec, self.revocations, self.accounts, self.users, self.audit
        )

        self.admin = Administration(
            settings,
            self.db,
            self.audit,
            self.users,
            self.tokens,
            self.api_keys,
            self.sessions,
            self.lockout,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> Bastion:
        """Settings from ``BASTION_*`` variables (``overrides`` win), checked, then built.

        In development a missing signing secret is generated once and kept in the data
        directory (mode 0600); production refuses to start without one (SPEC §5)."""
        settings = BastionSettings(**overrides)
        return cls(with_development_secret(settings))

    # ------------------------------------------------------------------------------ wiring

    @asynccontextmanager
    async def lifespan(self, app: FastAPI | None = None) -> AsyncIterator[None]:
        """Open the database (migrating the embedded SQLite one), reload revocations, and close
        everything at shutdown. Pass it as ``FastAPI(lifespan=bastion.lifespan)``."""
        if app is not None:
            self.settings.declare_scopes(dependencies.scopes_required_by(app.routes))
        self._announce_weakened_protections()
        if self.db.is_sqlite:
            await self.db.upgrade()
        await self.revocation_sync.load()
        await self.sessions.count_live()
        flusher = asyncio.create_task(self._flush_periodically())
        syncing = asyncio.create_task(self.revocation_sync.run())
        stop_metrics = (
            self.metrics.serve(self.settings.metrics_address)
            if self.settings.metrics_address
            else None
        )
        try:
            yield
        finally:
            self.request_log.flush()  # the last requests' lines, whatever fails below
            # stopped and waited for before the pool closes under them: a poll cut off
            # mid-query while its connection is disposed of can hang the loop's shutdown
            for task in (flusher, syncing):
                task.cancel()
            await asyncio.wait((flusher, syncing), timeout=5)
            if stop_metrics is not None:
                await asyncio.to_thread(stop_metrics)
            await self.api_keys.flush_last_used()
            await self.db.dispose()

    def _announce_weakened_protections(self) -> None:
        """Every protection a setting turned off is said once at start (STYLE §3.8)."""
        settings = self.settings
        if settings.insecure_http_cookies:
            logger.warning(
                "insecure_http_cookies",
                setting="BASTION_ALLOW_INSECURE_HTTP_COOKIES",
                detail="over plain HTTP, session cookies lose __Host- and Secure "
                "(development only; set it to false to refuse sessions over HTTP)",
            )

    async def _flush_periodically(self, every: float = 30.0) -> None:
        """Batch ``last_used_at`` writes of API keys: one write per key per period, not per
        request (SPEC §8); and count live sessions again, for expiry and other workers."""
        while True:
            await asyncio.sleep(every)
            await self.api_keys.flush_last_used()
            await self.sessions.count_live()

    def protect(self, app: FastAPI) -> None:
        """Install the edge, the error mapping and the ``/auth`` routes on ``app``, and redact
        uvicorn's own logs: its access log prints query strings (SPEC §3, §4.4).

        If the app has not configured structlog itself, Bastion's pipeline is installed: the
        library's default would render tracebacks with their local variables, which are the
        passwords and tokens the failing code was holding (SPEC §6).

        Routes declared on the app after this call are :class:`~bastion.api.guarded.GuardedRoute`
        (unless the app chose its own route class): their ``require()`` runs before FastAPI
        solves the rest, which costs a fifth less per authenticated request (README,
        Performance). An ``APIRouter`` of the app's takes ``route_class=GuardedRoute``."""
        redact_loggers()
        if not structlog.is_configured():
            configure_logging(self.settings, forward_stdlib=False)
        dependencies.attach_bastion(app, self)
        if app.router.route_class is APIRoute:
            # routes declared from now on run require() before FastAPI's solving
            app.router.route_class = GuardedRoute
        install_error_handlers(app, RefusalObserver(self.audit, self.metrics, self.limit_keys))
        install_openapi(app, lambda: self.settings.known_scopes)
        remove_fastapi_docs(app, keep_openapi=self.settings.docs)
        own = [
            route
            for router in (auth_api.router, keys_api.router, health_api.router)
            for route in router.routes
        ]
        if app.openapi_url and self.settings.docs:
            own += [*_take_route(app, app.openapi_url), *docs_routes(app, app.openapi_url)]
        app.router.routes.insert(0, RouteGroup(own))
        app.add_middleware(
            EdgeMiddleware,
            settings=self.settings,
            admission=IPLimit(
                limiter=self.limiter,
                policy=self.ip_policy,
                keys=self.limit_keys,
                on_error=self.settings.ratelimit_on_error or "open",
                on_refused=IPLimitObserver(self.audit, self.metrics, self.limit_keys),
            ),
            observer=self.request_log,
        )

    def require(
        self,
        *scopes: str,
        roles: Sequence[str] = (),
        schemes: Sequence[str] = dependencies.DEFAULT_SCHEMES,
        rate: str | None = None,
        api_key_in_query: bool = False,
    ) -> Any:
        """A dependency giving the caller's :class:`~bastion.Principal` when it holds every
        scope and role named, else 401/403 (SPEC §2.3–2.4); see
        :func:`bastion.api.dependencies.require` for ``schemes``, ``rate`` and
        ``api_key_in_query``. The scopes become known at once, so roles granted ``*`` (admin)
        hold them and the token endpoint can grant them."""
        self.settings.declare_scopes(scopes)
        return dependencies.require(
            *scopes, roles=roles, schemes=schemes, rate=rate, api_key_in_query=api_key_in_query
        )

    async def readiness(self) -> dict[str, str]:
        """Each configured backend, ``ok`` or ``down`` (SPEC §4.1 ``/ready``); asked at once,
        each bounded by its own timeout, so a hung backend cannot hang the probe."""
        checks = {"database": self.db.ping()}
        if self.settings.redis_url:
            checks["redis"] = self.limiter.is_healthy()
        results = await asyncio.gather(*checks.values())
        return {
            name: "ok" if healthy else "down" for name, healthy in zip(checks, results, strict=True)
        }


def _take_route(app: FastAPI, path: str) -> list[BaseRoute]:
    """The app's route at ``path`` (FastAPI's OpenAPI document), out of the app's list."""
    taken = [route for route in app.router.routes if getattr(route, "path", None) == path]
    app.router.routes[:] = [route for route in app.router.routes if route not in taken]
    return taken


def with_development_secret(settings: BastionSettings) -> BastionSettings:
    """The settings, with a generated signing secret when development runs without one."""
    if settings.secret_key is not None or settings.is_production:
        return settings
    path = settings.data_dir / DEV_SECRET_FILE
    secret = _read_or_create_secret(path)
    return settings.model_copy(update={"secret_key": secret})


def _read_or_create_secret(path: Path) -> SecretStr:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return SecretStr(path.read_text(encoding="utf-8").strip())
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(generate_secret() + "\n")
    logger.warning(
        "development_secret_generated",
        path=str(path.resolve()),
        hint="set BASTION_SECRET_KEY (or BASTION_SECRET_KEY_FILE) in production",
    )
    return SecretStr(path.read_text(encoding="utf-8").strip())
