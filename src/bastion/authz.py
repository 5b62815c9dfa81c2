"""What a route demands of an authenticated caller (SPEC §2.4). Never parses credentials."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.errors import InsufficientScope, MissingRole
from bastion.principal import CredentialKind, Principal


@dataclass(frozen=True, slots=True)
class Requirement:
    """Scopes *and* roles a route needs; an empty requirement means "any authenticated caller"."""

    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def check(self, principal: Principal) -> None:
        """Raise 403 when the caller is known but not allowed. Roles are checked first: a
        non-admin is told it lacks a role rather than which admin scopes exist."""
        bearer = principal.kind is CredentialKind.BEARER
        if not principal.has_roles(self.roles):
            raise MissingRole(self.scopes | self.roles, bearer=bearer)
        missing = self.scopes - principal.scopes
        if missing:
            raise InsufficientScope(self.scopes, bearer=bearer)


def narrow_scopes(requested: str | None, allowed: frozenset[str]) -> frozenset[str] | None:
    """The scopes to grant for an RFC 6749 ``scope`` parameter: all of ``allowed`` when absent,
    exactly the requested ones when each is allowed, ``None`` when any is not (never silently
    dropped, never silently granted: SPEC §4.2)."""
    if requested is None or not requested.strip():
        return allowed
    wanted = frozenset(requested.split())
    return wanted if wanted <= allowed else None
