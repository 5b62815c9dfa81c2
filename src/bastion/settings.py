"""Bastion's configuration: every knob is a ``BASTION_*`` variable (SPEC §5).

Settings are read and validated once, at start, and then passed explicitly to the parts
that need them. Nothing else in the package reads ``os.environ``. Cross-field rules that make a
deployment unsafe are collected by :meth:`BastionSettings.production_findings` so that the
server can refuse to start and ``bastion check-config`` can list *every* problem at once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bastion.edge.cors import canonical_origin
from bastion.edge.hosts import host_pattern

MIN_SECRET_BYTES = 32
"""HS256 needs a key at least as long as its output (RFC 7518 §3.2); SPEC §4.2 says ≥ 32 bytes."""

DEFAULT_ROLES: dict[str, list[str]] = {
    "user": ["items:read", "items:write", "keys:manage"],
    "admin": ["*"],
}
"""SPEC §4.7: ``*`` stands for every scope the server knows, plus ``admin``."""

ASYNC_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
"""The database URLs Bastion accepts (SPEC §7)."""

BUILTIN_SCOPES: tuple[str, ...] = (
    "items:read",
    "items:write",
    "keys:manage",
    "metrics:read",
    "admin",
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class JWTAlgorithm(StrEnum):
    HS256 = "HS256"
    EDDSA = "EdDSA"
    ES256 = "ES256"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


def _split_csv(value: Any) -> Any:
    """Accept ``a,b`` as well as a JSON list, so that shell users need no quoting gymnastics."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class BastionSettings(BaseSettings):
    """All of Bastion's settings. Secure by default; anything weaker is opt-in by name."""

    model_config = SettingsConfigDict(
        env_prefix="BASTION_",
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    env: Environment = Environment.DEVELOPMENT
    """``production`` turns every warning of :meth:`production_findings` into a refusal."""

    data_dir: Path = Path("./bastion-data")
    """Where the embedded SQLite database and a development signing key live."""

    database_url: str | None = None
    """SQLAlchemy async URL; ``None`` means ``sqlite+aiosqlite:///<data_dir>/bastion.db``."""

    database_pool_size: int = Field(default=10, ge=1, le=500)
    """Connections each worker keeps to PostgreSQL (as many again may open under a burst)."""
    database_timeout: float = Field(default=5.0, gt=0, le=120)
    """Seconds to connect, to wait for a pooled connection, for one statement, and for SQLite's
    lock: a stuck database becomes a 503, never a request that waits forever."""

    redis_url: str | None = None
    """Shared limits and revocation across workers (SPEC §7); in-process when unset."""
    redis_prefix: str = Field(default="bastion", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    """Prefix of every Redis key, so several deployments (or test runs) can share one Redis."""
    redis_timeout: float = Field(default=1.0, gt=0, le=30)
    """Seconds to connect to Redis and for each command."""
    redis_pool_size: int = Field(default=100, ge=1, le=10_000)
    """Connections each worker may open to Redis."""

    secret_key: SecretStr | None = None
    """HS256 signing key and the root from which every other secret is derived (SPEC §4.2)."""

    secret_key_file: Path | None = None
    """A file holding the secret key, for secret managers that mount files."""

    jwt_algorithm: JWTAlgorithm = JWTAlgorithm.HS256
    jwt_private_key_file: Path | None = None
    """PEM private key for EdDSA/ES256; its public half is published in the JWKS."""

    jwt_previous_key_file: Path | None = None
    """PEM key of the previous generation, kept for verification only during a rotation."""

    previous_secret_key: SecretStr | None = None
    """HS256 key of the previous generation; tokens it signed verify until they expire."""

    issuer: str = "bastion"
    audience: str = "bastion"

    access_token_ttl: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl: int = Field(default=30 * 86_400, ge=60, le=365 * 86_400)
    api_key_max_days: int = Field(default=90, ge=1, le=3650)

    docs: bool = True
    session_idle_seconds: int = Field(default=1800, ge=60)
    session_absolute_seconds: int = Field(default=12 * 3600, ge=300)
    allow_insecure_http_cookies: bool | None = None
    """Plain-HTTP session cookies (no ``__Host-``, no ``Secure``) for requests over HTTP.
    ``None`` means: allowed in development, never in production (SPEC §4.3)."""
    signup: bool | None = None
    """``None`` means: open in development, closed in production (SPEC §5)."""

    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    """Let browsers send cookies cross-origin to the listed origins; never with ``*`` (SPEC §5)."""

    https_redirect: bool | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    ratelimit_ip: str = "600/minute"
    ratelimit_principal: str = "1200/minute"
    ratelimit_login: str = "10/minute"
    ratelimit_ipv6_prefix: int = Field(default=64, ge=32, le=128)
    """IPv6 clients share a per-IP limit per network of this prefix length: one subscriber
    holds a whole /64, and a limit per address would give it 2^64 of them."""
    ratelimit_on_error: Literal["open", "closed"] | None = None
    """When the limit storage (Redis) fails: ``None`` means closed for login, open elsewhere."""
    ratelimit_strategy: Literal["fixed-window", "sliding-window-counter", "moving-window"] = (
        "fixed-window"
    )
    lockout_base_seconds: int = Field(default=60, ge=1)
    """The first lock lasts this long; each further lock of the account doubles it."""
    lockout_max_seconds: int = Field(default=3600, ge=1)
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_window: int = Field(default=900, ge=1)

    roles: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_ROLES))
    """Role → scopes (SPEC §4.7), as JSON in ``BASTION_ROLES``."""

    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_cost: int = Field(default=19_456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    """OWASP's Argon2id parameters (m=19 MiB, t=2, p=1); SPEC §8 measured 34 ms per verify."""

    password_hash_concurrency: int = Field(default_factory=lambda: usable_cpus(), ge=1)
    """Hashes at once per process: one per CPU this process may run on (SPEC §8)."""
    password_hash_queue: int = Field(default=64, ge=0)
    """Logins waiting for a hashing slot; beyond this the server answers 503 (SPEC §8)."""

    metrics_address: str | None = Field(default=None, pattern=r"^[^:\s]+:[0-9]{1,5}$")
    """``host:port`` serving ``/metrics`` without credentials (for a scraper on a private
    network); ``None`` keeps metrics on the API only, behind ``metrics:read``."""
    prometheus_multiproc_dir: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "PROMETHEUS_MULTIPROC_DIR", "BASTION_PROMETHEUS_MULTIPROC_DIR"
        ),
    )
    """Where each worker's metrics go when several run (prometheus-client's multiprocess mode;
    ``bastion serve --workers N`` sets it up)."""

    audit_retention_days: int = Field(default=90, ge=1)
    """``bastion events prune`` deletes events older than this (SPEC §6)."""

    workers: int = Field(default=1, ge=1)
    log_format: LogFormat | None = None
    log_level: str = "info"

    _declared_scopes: set[str] = PrivateAttr(default_factory=set)
    """Scopes the app's routes require (``bastion.require("reports:read")``): part of what
    ``*`` grants, so an admin holds an app's own scopes without listing them (SPEC §4.7)."""
    _role_scopes: dict[frozenset[str], frozenset[str]] = PrivateAttr(default_factory=dict)
    """``scopes_for_roles`` answers, memoised: it runs on every authenticated request."""

    @field_validator("allowed_hosts", "trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _lists_from_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_async(cls, value: str | None) -> str | None:
        """Only the two engines Bastion migrates and tests, through their async drivers; a typo
        is refused at start instead of failing on the first request."""
        if value is None:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL; use sqlite+aiosqlite:///path or "
                "postgresql+asyncpg://user@host/name"
            ) from None
        if url.drivername not in ASYNC_DRIVERS:
            raise ValueError(
                f"{url.drivername!r} is not supported; use one of {', '.join(ASYNC_DRIVERS)}"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from exc
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_are_patterns(cls, value: list[str]) -> list[str]:
        """A typo (a port, a wildcard mid-name) would refuse every request; refuse to start."""
        for entry in value:
            host_pattern(entry)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_exact(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                canonical_origin(entry)
        return value

    @model_validator(mode="after")
    def _no_credentials_for_any_origin(self) -> BastionSettings:
        """SPEC §5: ``*`` with credentials would let every site act with the user's cookies."""
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "BASTION_CORS_ALLOW_CREDENTIALS needs exact BASTION_CORS_ORIGINS, not '*'"
            )
        return self

    @field_validator("ratelimit_ip", "ratelimit_principal", "ratelimit_login")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        from bastion.ratelimit.policies import Policy

        Policy.parse("setting", value)  # InvalidRateLimit is a ValueError: pydantic reports it
        return value

    @field_validator("roles", mode="before")
    @classmethod
    def _roles_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value)
        return value

    @model_validator(mode="after")
    def _secret_from_file(self) -> BastionSettings:
        """Read ``BASTION_SECRET_KEY_FILE`` once; a key given both ways is ambiguous."""
        if self.secret_key_file is None:
            return self
        if self.secret_key is not None:
            raise ValueError("set BASTION_SECRET_KEY or BASTION_SECRET_KEY_FILE, not both")
        try:
            text = self.secret_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"BASTION_SECRET_KEY_FILE cannot be read: {exc.strerror}") from exc
        object.__setattr__(self, "secret_key", SecretStr(text))
        return self

    # ----------------------------------------------------------------------------- derived

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def signup_open(self) -> bool:
        return self.signup if self.signup is not None else not self.is_production

    @property
    def insecure_http_cookies(self) -> bool:
        if self.is_production:
            return False
        return self.allow_insecure_http_cookies is not False

    @property
    def redirect_to_https(self) -> bool:
        return self.https_redirect if self.https_redirect is not None else self.is_production

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.JSON if self.is_production else LogFormat.CONSOLE

    @property
    def effective_allowed_hosts(self) -> list[str]:
        if self.allowed_hosts:
            return self.allowed_hosts
        return [] if self.is_production else ["localhost", "127.0.0.1", "testserver"]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bastion.db').resolve()}"

    @property
    def known_scopes(self) -> frozenset[str]:
        """Every scope a role can name or a route requires, so that ``*`` expands to a finite,
        auditable set."""
        scopes = set(BUILTIN_SCOPES) | self._declared_scopes
        for granted in self.roles.values():
            scopes.update(s for s in granted if s != "*")
        return frozenset(scopes)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with scope registries of its own (pydantic would share the containers)."""
        copy = super().model_copy(update=update, deep=deep)
        copy._declared_scopes = set(self._declared_scopes)
        copy._role_scopes = {}
        return copy

    def declare_scopes(self, scopes: Iterable[str]) -> None:
        """Make ``scopes`` known (a route requires them); settings stay frozen otherwise."""
        new = set(scopes) - self._declared_scopes
        if new:
            self._declared_scopes.update(new)
            self._role_scopes.clear()

    def scopes_for_roles(self, roles: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
        key = roles if isinstance(roles, frozenset) else frozenset(roles)
        # The memo is read from pydantic's private-attribute dict itself: ``self._role_scopes``
        # reaches it only after a failed attribute lookup, an exception raised and caught on
        # every authenticated request (a quarter of what authenticating a token costs).
        private = self.__pydantic_private__
        memo: dict[frozenset[str], frozenset[str]] = (
            private["_role_scopes"] if private is not None else self._role_scopes
        )
        cached = memo.get(key)
        if cached is not None:
            return cached
        scopes: set[str] = set()
        for role in key:
            granted = self.roles.get(role, [])
            if "*" in granted:
                scopes.update(self.known_scopes)
            else:
                scopes.update(granted)
        if len(memo) > 1024:  # role sets are few; never let odd input grow it
            memo.clear()
        result = memo[key] = frozenset(scopes)
        return result

    def production_findings(self) -> list[str]:
        """Every reason this configuration is unsafe for production (SPEC §5), each naming its
        setting. Empty means fine. Checked whatever ``BASTION_ENV`` is, so that
        ``bastion check-config`` can be run in CI before a deploy."""
        findings: list[str] = []
        findings.extend(self._secret_findings())
        if not self.allowed_hosts:
            findings.append("BASTION_ALLOWED_HOSTS is not set: name the hosts this API serves")
        elif "*" in self.allowed_hosts:
            findings.append("BASTION_ALLOWED_HOSTS contains a wildcard '*'")
        if "*" in self.cors_origins:
            findings.append("BASTION_CORS_ORIGINS contains '*': list exact origins")
        if self.workers > 1 and not self.redis_url:
            findings.append(
                "BASTION_REDIS_URL is not set but several workers run: limits and revocations "
                "would be per process"
            )
        if self.allow_insecure_http_cookies:
            findings.append(
                "BASTION_ALLOW_INSECURE_HTTP_COOKIES is on: session cookies would travel in clear"
            )
        if self.https_redirect is False:
            findings.append("BASTION_HTTPS_REDIRECT is off: production must redirect to HTTPS")
        return findings

    def _secret_findings(self) -> list[str]:
        if self.secret_key is None:
            return ["BASTION_SECRET_KEY is not set (or BASTION_SECRET_KEY_FILE)"]
        if len(self.secret_key.get_secret_value().encode()) < MIN_SECRET_BYTES:
            return [f"BASTION_SECRET_KEY is weak: it must be at least {MIN_SECRET_BYTES} bytes"]
        if len(set(self.secret_key.get_secret_value())) < 8:
            return ["BASTION_SECRET_KEY is weak: too few distinct characters"]
        return []


def usable_cpus() -> int:
    """The CPUs this process may run on, which a container or ``taskset`` can make fewer than
    the machine's: two hashes at once on one allowed CPU only slow each other and the event
    loop down."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def generate_secret() -> str:
    """A fresh signing secret: 48 random bytes, URL-safe (≈ 384 bits)."""
    return secrets.token_urlsafe(48)
