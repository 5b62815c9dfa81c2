"""Route requirements and scope narrowing (SPEC §2.4, §3 403s, §4.2 scope parameter)."""

from __future__ import annotations

import pytest

from bastion.authz import Requirement, narrow_scopes
from bastion.errors import InsufficientScope, MissingRole, render_bastion_error
from bastion.principal import CredentialKind, Principal

USER_SCOPES = frozenset({"items:read", "items:write", "keys:manage"})


def principal(
    *,
    scopes: frozenset[str] = USER_SCOPES,
    roles: frozenset[str] = frozenset({"user"}),
    kind: CredentialKind = CredentialKind.BEARER,
) -> Principal:
    return Principal(
        subject="1",
        username="alice",
        kind=kind,
        scopes=scopes,
        roles=roles,
        credential_id="cred-1",
    )


# ----------------------------------------------------------------------------- Requirement


def test_an_empty_requirement_admits_any_authenticated_caller() -> None:
    Requirement().check(principal(scopes=frozenset(), roles=frozenset()))


def test_a_caller_holding_every_required_scope_passes() -> None:
    Requirement(scopes=frozenset({"items:read", "items:write"})).check(principal())


def test_a_missing_scope_is_insufficient_scope() -> None:
    with pytest.raises(InsufficientScope) as info:
        Requirement(scopes=frozenset({"items:read", "metrics:read"})).check(principal())

    assert info.value.status == 403
    assert info.value.required == ["items:read", "metrics:read"]


def test_a_missing_role_is_missing_role() -> None:
    with pytest.raises(MissingRole) as info:
        Requirement(roles=frozenset({"admin"})).check(principal())

    assert info.value.status == 403


def test_a_caller_with_the_role_passes() -> None:
    admin = principal(roles=frozenset({"user", "admin"}))

    Requirement(roles=frozenset({"admin"})).check(admin)


def test_a_missing_role_is_an_insufficient_scope_challenge_for_a_bearer() -> None:
    """SPEC §3: a 403 for a missing scope *or role* carries the RFC 6750 challenge."""
    requirement = Requirement(scopes=frozenset({"items:read"}), roles=frozenset({"admin"}))

    with pytest.raises(MissingRole) as info:
        requirement.check(principal())

    headers = render_bastion_error(info.value).headers
    assert headers["www-authenticate"] == (
        'Bearer realm="bastion", error="insufficient_scope", scope="admin items:read"'
    )


def test_the_role_alone_is_not_enough_without_the_scope() -> None:
    narrowed_admin = principal(scopes=frozenset({"items:read"}), roles=frozenset({"admin"}))

    with pytest.raises(InsufficientScope):
        Requirement(scopes=frozenset({"admin"}), roles=frozenset({"admin"})).check(narrowed_admin)


def test_insufficient_scope_for_a_bearer_token_carries_the_rfc_6750_challenge() -> None:
    with pytest.raises(InsufficientScope) as info:
        Requirement(scopes=frozenset({"metrics:read", "items:read"})).check(principal())

    response = render_bastion_error(info.value)

    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="bastion", error="insufficient_scope", scope="items:read metrics:read"'
    )
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("kind", [CredentialKind.API_KEY, CredentialKind.SESSION])
def test_insufficient_scope_without_a_bearer_token_has_no_bearer_challenge(
    kind: CredentialKind,
) -> None:
    with pytest.raises(InsufficientScope) as info:
        Requirement(scopes=frozenset({"metrics:read"})).check(principal(kind=kind))

    response = render_bastion_error(info.value)

    assert response.status_code == 403
    assert "www-authenticate" not in response.headers


# ----------------------------------------------------------------------------- narrow_scopes


@pytest.mark.parametrize("requested", [None, "", "   "])
def test_no_scope_parameter_grants_everything_allowed(requested: str | None) -> None:
    assert narrow_scopes(requested, USER_SCOPES) == USER_SCOPES


def test_a_subset_is_granted_exactly() -> None:
    assert narrow_scopes("items:read", USER_SCOPES) == frozenset({"items:read"})


def test_scope_separators_are_any_white_space_and_duplicates_collapse() -> None:
    granted = narrow_scopes("items:read  keys:manage items:read", USER_SCOPES)

    assert granted == frozenset({"items:read", "keys:manage"})


def test_a_scope_outside_the_allowed_set_refuses_the_whole_request() -> None:
    assert narrow_scopes("items:read admin", USER_SCOPES) is None


def test_a_superset_is_refused_rather_than_silently_trimmed() -> None:
    assert narrow_scopes(" ".join(sorted(USER_SCOPES | {"admin"})), USER_SCOPES) is None


def test_nothing_can_be_requested_from_an_empty_allowance() -> None:
    assert narrow_scopes("items:read", frozenset()) is None
    assert narrow_scopes(None, frozenset()) == frozenset()
