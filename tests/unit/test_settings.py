"""BastionSettings: BASTION_* parsing, the secret file, and the production checks (SPEC §5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion import settings as settings_module
from bastion.settings import (
    BUILTIN_SCOPES,
    BastionSettings,
    Environment,
    JWTAlgorithm,
    generate_secret,
)
from tests.conftest import TEST_SECRET


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the developer's shell exports must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("BASTION_"):
            monkeypatch.delenv(name)


def production_settings(**overrides: object) -> BastionSettings:
    values: dict[str, object] = {
        "env": "production",
        "secret_key": TEST_SECRET,
        "allowed_hosts": ["api.example.com"],
    }
    values.update(overrides)
    return BastionSettings(**values)


# ----------------------------------------------------------------------------- env parsing


def test_settings_are_read_from_bastion_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_ENV", "production")
    monkeypatch.setenv("BASTION_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("BASTION_ACCESS_TOKEN_TTL", "600")
    monkeypatch.setenv("BASTION_JWT_ALGORITHM", "EdDSA")
    monkeypatch.setenv("BASTION_ISSUER", "https://issuer.example")
    monkeypatch.setenv("BASTION_DOCS", "false")
    monkeypatch.setenv("BASTION_WORKERS", "4")
    monkeypatch.setenv("BASTION_REDIS_URL", "redis://cache:6379/0")

    settings = BastionSettings()

    assert settings.env is Environment.PRODUCTION
    assert settings.is_production
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == TEST_SECRET
    assert settings.access_token_ttl == 600
    assert settings.jwt_algorithm is JWTAlgorithm.EDDSA
    assert settings.issuer == "https://issuer.example"
    assert settings.docs is False
    assert settings.workers == 4
    assert settings.redis_url == "redis://cache:6379/0"


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("ENV", "production")

    settings = BastionSettings()

    assert settings.secret_key is None
    assert settings.env is Environment.DEVELOPMENT


def test_defaults_match_the_spec_table() -> None:
    settings = BastionSettings()

    assert settings.env is Environment.DEVELOPMENT
    assert settings.jwt_algorithm is JWTAlgorithm.HS256
    assert settings.access_token_ttl == 900
    assert settings.refresh_token_ttl == 30 * 86_400
    assert settings.api_key_max_days == 90
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.ratelimit_ip == "600/minute"
    assert settings.ratelimit_principal == "1200/minute"
    assert settings.ratelimit_login == "10/minute"
    assert settings.lockout_threshold == 5
    assert settings.lockout_window == 900
    assert settings.trusted_proxies == []
    assert settings.cors_origins == []
    assert (settings.argon2_memory_cost, settings.argon2_time_cost) == (19_456, 2)
    assert settings.argon2_parallelism == 1


def test_a_secret_key_is_never_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_SECRET_KEY", TEST_SECRET)

    assert TEST_SECRET not in repr(BastionSettings())


@pytest.mark.parametrize(
    "field", ["allowed_hosts", "cors_origins", "trusted_proxies"], ids=lambda f: f
)
@pytest.mark.parametrize("raw", ["{a}, {b}", '["{a}", "{b}"]'], ids=["csv", "json"])
def test_list_settings_accept_csv_and_json_forms(
    monkeypatch: pytest.MonkeyPatch, field: str, raw: str
) -> None:
    examples = {
        "allowed_hosts": ("api.example.com", "www.example.com"),
        "cors_origins": ("https://app.example.com", "https://admin.example.com"),
        "trusted_proxies": ("10.0.0.0/8", "192.168.1.1"),
    }
    a, b = examples[field]
    monkeypatch.setenv(f"BASTION_{field.upper()}", raw.format(a=a, b=b))

    assert getattr(BastionSettings(), field) == [a, b]


def test_csv_list_ignores_empty_entries_and_surrounding_spaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_ALLOWED_HOSTS", " a.example ,, b.example , ")

    assert BastionSettings().allowed_hosts == ["a.example", "b.example"]


def test_a_malformed_json_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_ALLOWED_HOSTS", '["a.example", ')

    with pytest.raises(ValidationError, match="allowed_hosts"):
        BastionSettings()


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("true", True), ("0", False)])
def test_boolean_settings_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("BASTION_ENV", "production")
    monkeypatch.setenv("BASTION_SIGNUP", raw)
    monkeypatch.setenv("BASTION_HTTPS_REDIRECT", raw)

    settings = BastionSettings()

    assert settings.signup_open is expected
    assert settings.redirect_to_https is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BASTION_ENV", "staging"),
        ("BASTION_JWT_ALGORITHM", "none"),
        ("BASTION_JWT_ALGORITHM", "RS256"),
        ("BASTION_ACCESS_TOKEN_TTL", "5"),
        ("BASTION_WORKERS", "0"),
    ],
)
def test_unknown_or_out_of_range_values_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        BastionSettings()


@pytest.mark.parametrize("bad", ["not-an-ip", "10.0.0.0/33", "300.1.1.1", "localhost"])
def test_a_trusted_proxy_that_is_not_an_address_or_cidr_is_refused(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("BASTION_TRUSTED_PROXIES", f"10.0.0.1,{bad}")

    with pytest.raises(ValidationError, match="not an IP address or CIDR network"):
        BastionSettings()


def test_ipv6_trusted_proxies_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_TRUSTED_PROXIES", "::1,fd00::/8")

    assert BastionSettings().trusted_proxies == ["::1", "fd00::/8"]


def test_roles_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_ROLES", '{"reader": ["items:read"], "admin": ["*"]}')

    assert BastionSettings().roles == {"reader": ["items:read"], "admin": ["*"]}


# ----------------------------------------------------------------------------- secret file


def test_secret_key_is_read_from_the_named_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(TEST_SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("BASTION_SECRET_KEY_FILE", str(secret_file))

    settings = BastionSettings()

    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == TEST_SECRET


def test_secret_key_and_secret_key_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(TEST_SECRET, encoding="utf-8")
    monkeypatch.setenv("BASTION_SECRET_KEY_FILE", str(secret_file))
    monkeypatch.setenv("BASTION_SECRET_KEY", TEST_SECRET)

    with pytest.raises(ValidationError, match="BASTION_SECRET_KEY or BASTION_SECRET_KEY_FILE"):
        BastionSettings()


def test_an_unreadable_secret_key_file_is_refused_without_echoing_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_SECRET_KEY_FILE", str(tmp_path / "missing"))

    with pytest.raises(ValidationError, match="BASTION_SECRET_KEY_FILE cannot be read"):
        BastionSettings()


# ----------------------------------------------------------------------------- production


def test_a_clean_production_configuration_has_no_findings() -> None:
    assert production_settings().production_findings() == []


def test_a_clean_multi_worker_production_configuration_with_redis_has_no_findings() -> None:
    settings = production_settings(workers=4, redis_url="redis://cache:6379/0")

    assert settings.production_findings() == []


def test_production_findings_list_every_problem_at_once() -> None:
    settings = BastionSettings(
        env="production",
        allowed_hosts=["*"],
        cors_origins=["*"],
        workers=2,
    )

    findings = settings.production_findings()

    assert len(findings) == 4, findings
    joined = "\n".join(findings)
    assert "BASTION_SECRET_KEY" in findings[0]
    assert "BASTION_ALLOWED_HOSTS" in joined
    assert "BASTION_CORS_ORIGINS" in joined
    assert "BASTION_REDIS_URL" in joined


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"secret_key": None}, "BASTION_SECRET_KEY"),
        ({"secret_key": "s" * 31}, "BASTION_SECRET_KEY"),
        ({"secret_key": "ab" * 20}, "BASTION_SECRET_KEY"),
        ({"allowed_hosts": []}, "BASTION_ALLOWED_HOSTS"),
        ({"allowed_hosts": ["api.example.com", "*"]}, "BASTION_ALLOWED_HOSTS"),
        ({"cors_origins": ["https://app.example.com", "*"]}, "BASTION_CORS_ORIGINS"),
        ({"workers": 2}, "BASTION_REDIS_URL"),
        ({"https_redirect": False}, "BASTION_HTTPS_REDIRECT"),
    ],
    ids=[
        "missing-secret",
        "secret-under-32-bytes",
        "secret-few-distinct-characters",
        "no-allowed-hosts",
        "wildcard-host",
        "wildcard-cors-origin",
        "workers-without-redis",
        "https-redirect-off",
    ],
)
def test_each_unsafe_production_setting_is_one_finding_naming_its_setting(
    overrides: dict[str, object], setting: str
) -> None:
    findings = production_settings(**overrides).production_findings()

    assert len(findings) == 1, findings
    assert setting in findings[0]


def test_secret_strength_is_measured_in_bytes_not_characters() -> None:
    sixteen_characters_32_bytes = "éàüöçñßø" * 2
    fifteen_characters_30_bytes = sixteen_characters_32_bytes[:-1]

    assert production_settings(secret_key=sixteen_characters_32_bytes).production_findings() == []
    findings = production_settings(secret_key=fifteen_characters_30_bytes).production_findings()
    assert len(findings) == 1
    assert "at least 32 bytes" in findings[0]


def test_a_weak_secret_finding_never_contains_the_secret() -> None:
    weak = "tiny-secret-value"

    findings = production_settings(secret_key=weak).production_findings()

    assert findings
    assert all(weak not in finding for finding in findings)


def test_production_findings_are_checked_in_development_too() -> None:
    assert BastionSettings(env="development").production_findings() != []


# ----------------------------------------------------------------------------- derived


def test_signup_is_open_in_development_and_closed_in_production_by_default() -> None:
    assert BastionSettings().signup_open is True
    assert production_settings().signup_open is False


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("signup", [True, False])
def test_an_explicit_signup_setting_wins_over_the_environment_default(
    env: str, signup: bool
) -> None:
    assert BastionSettings(env=env, signup=signup).signup_open is signup


def test_https_redirect_is_on_by_default_in_production_only() -> None:
    assert BastionSettings().redirect_to_https is False
    assert production_settings().redirect_to_https is True


def test_allowed_hosts_default_to_local_names_in_development_and_none_in_production() -> None:
    development = BastionSettings().effective_allowed_hosts
    assert "localhost" in development
    assert "127.0.0.1" in development
    assert BastionSettings(env="production").effective_allowed_hosts == []


def test_the_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    url = BastionSettings(data_dir=tmp_path).effective_database_url

    assert url == f"sqlite+aiosqlite:///{(tmp_path / 'bastion.db').resolve()}"


def test_the_user_role_gets_exactly_its_configured_scopes() -> None:
    scopes = BastionSettings().scopes_for_roles({"user"})

    assert scopes == frozenset({"items:read", "items:write", "keys:manage"})


def test_the_wildcard_role_expands_to_every_known_scope_including_admin() -> None:
    settings = BastionSettings(
        roles={"user": ["items:read"], "reporter": ["reports:read"], "admin": ["*"]}
    )

    scopes = settings.scopes_for_roles({"admin"})

    assert "*" not in scopes
    assert "admin" in scopes
    assert "reports:read" in scopes
    assert set(BUILTIN_SCOPES) <= scopes
    assert scopes == settings.known_scopes


def test_unknown_roles_grant_no_scopes() -> None:
    assert BastionSettings().scopes_for_roles({"nobody"}) == frozenset()


def test_scopes_of_several_roles_are_united() -> None:
    settings = BastionSettings(roles={"a": ["x:read"], "b": ["y:write"]})

    assert settings.scopes_for_roles(["a", "b"]) == frozenset({"x:read", "y:write"})


def test_generated_secrets_are_strong_and_unique() -> None:
    first, second = generate_secret(), generate_secret()

    assert first != second
    assert len(first.encode()) >= 32
    assert production_settings(secret_key=first).production_findings() == []


def test_password_hashing_defaults_to_one_hash_per_cpu_the_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pinned to one CPU (taskset, a container's cpuset), two hashes at once would only slow
    each other and the event loop: the default follows the affinity, not the machine."""
    monkeypatch.setattr(settings_module.os, "sched_getaffinity", lambda _pid: {3}, raising=False)
    assert BastionSettings().password_hash_concurrency == 1
    monkeypatch.setattr(settings_module.os, "sched_getaffinity", lambda _pid: {0, 1, 2})
    assert BastionSettings().password_hash_concurrency == 3
