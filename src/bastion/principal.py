"""Who is calling, and how: the one object that crosses from authentication to handlers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CredentialKind(StrEnum):
    """Where the credential travelled (SPEC §2.3); ``/auth/me`` reports it as ``auth``."""

    BEARER = "bearer"
    API_KEY = "api_key"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``scopes`` are what this credential may do *now*: what it was granted at issue, narrowed by
    the user's current roles, so that removing a role takes effect on live tokens (SPEC §4.7).
    ``credential_id`` names the credential itself (an access token's ``jti``, a key's id, a
    session's id) so that logout and revocation can act on exactly it; ``family_id`` is the
    refresh family (``sid``) a bearer token came from.
    """

    subject: str
    username: str
    kind: CredentialKind
    scopes: frozenset[str]
    roles: frozenset[str]
    credential_id: str
    family_id: str | None = None
    expires_at: int | None = None
    rate_limit: str | None = None
    """A limit of this credential's own (an API key's optional per-key limit, SPEC §4.4)."""

    @property
    def user_id(self) -> int:
        return int(self.subject)

    def has_scopes(self, required: frozenset[str] | set[str]) -> bool:
        return required <= self.scopes

    def has_roles(self, required: frozenset[str] | set[str]) -> bool:
        return required <= self.roles
