"""Request → :class:`Principal`: read exactly one credential and verify it (SPEC §2.3).

Reading where a credential travels is kept apart from deciding what it means: the transport
functions here only pick headers apart, the token codec and the stores verify.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from starlette.requests import cookie_parser

from bastion.csrf import CSRF_HEADER, UNSAFE_METHODS, is_valid_csrf_token
from bastion.errors import AmbiguousCredentials, AuthenticationError, CSRFFailed, InvalidToken
from bastion.key_service import ApiKeyService, InvalidApiKey
from bastion.principal import CredentialKind, Principal
from bastion.sessions import InvalidSession, SessionService, cookie_names
from bastion.settings import BastionSettings
from bastion.tokens.jwt import AccessClaims, AccessTokenCodec
from bastion.tokens.revocation import RevocationList
from bastion.user_state import UserState, UserStateCache

TWO_API_KEYS = "Send the API key once: in X-API-Key or in ?api_key=, not both."

PRINCIPALS_KEPT = 8192
"""Principals remembered (see ``Authenticator._known``)."""

CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key", b"cookie", CSRF_HEADER.encode()})
"""The request headers :meth:`Authenticator.authenticate` reads."""


def credential_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers authentication reads, picked from the raw ASGI list in one pass; the first
    line of each, as ``Headers.get`` would give it. Starlette's ``Headers`` decodes every header
    of the request before its first lookup, and each lookup scans them all again: three of
    those on every authenticated request cost more than this whole pass."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in CREDENTIAL_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def bearer_token_from_header(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (RFC 6750 §2.1), or ``None`` when the
    header is absent or names another scheme. An empty token is returned as ``""``, which the
    caller refuses as an invalid token rather than as a missing one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class Authenticator:
    """Turns credentials into principals for every scheme a route accepts."""

    def __init__(
        self,
        settings: BastionSettings,
        codec: AccessTokenCodec,
        revocations: RevocationList,
        users: UserStateCache,
        keys: ApiKeyService,
        sessions: SessionService,
        csrf_key: bytes,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._revocations = revocations
        self._users = users
        self._keys = keys
        self._sessions = sessions
        self._csrf_key = csrf_key
        self._principals: dict[int, tuple[object, UserState, frozenset[str], Principal]] = {}
        secure_name, plain_name = cookie_names(secure=True)[0], cookie_names(secure=False)[0]
        self._session_cookies = (
            (secure_name, plain_name) if settings.insecure_http_cookies else (secure_name,)
        )

    async def authenticate(
        self,
        headers: Mapping[str, str],
        schemes: Sequence[str] = ("bearer",),
        *,
        method: str = "GET",
        query_api_key: str | None = None,
    ) -> Principal:
        """The caller, or :class:`AuthenticationError` (401) with a challenge per scheme.

        A bearer token *and* an API key is a 400: we never guess which one the client meant;
        so is a key in ``X-API-Key`` and another in ``?api_key=`` on a route that takes both. A
        session cookie is used only when neither is sent: an explicit credential wins, and then
        no CSRF token is needed because nothing ambient authenticated the request (SPEC §4.3)."""
        token = bearer_token_from_header(headers.get("authorization"))
        api_key = headers.get("x-api-key")
        if query_api_key is not None and "api_key" in schemes:
            if api_key is not None:
                raise AmbiguousCredentials(TWO_API_KEYS)
            api_key = query_api_key
        if token is not None and api_key is not None:
            raise AmbiguousCredentials()
        if token is not None and "bearer" in schemes:
            return await self.principal_from_bearer(token, schemes)
        if api_key is not None and "api_key" in schemes:
            return await self.principal_from_api_key(api_key, schemes)
        if token is None and api_key is None and "session" in schemes:
            session_token = self.session_token(headers)
            if session_token is not None:
                return await self.principal_from_session(session_token, headers, method, schemes)
        raise AuthenticationError(schemes=schemes)

    def session_token(self, headers: Mapping[str, str]) -> str | None:
        """The session cookie's value; the plain-HTTP name only where it is allowed."""
        raw = headers.get("cookie")
        if not raw:
            return None
        cookies = cookie_parser(raw)
        for name in self._session_cookies:
            if value := cookies.get(name):
                return value
        return None

    async def principal_from_session(
        self, token: str, headers: Mapping[str, str], method: str, schemes: Sequence[str]
    ) -> Principal:
        try:
            record = await self._sessions.authenticate(token)
            user = await self._live_user(record.user_id, record.created_at)
        except (InvalidSession, InvalidToken) as exc:
            raise InvalidSession(exc.detail, schemes=schemes) from None
        if method.upper() in UNSAFE_METHODS and not is_valid_csrf_token(
            headers.get(CSRF_HEADER), token, self._csrf_key
        ):
            raise CSRFFailed(user.username)
        allowed = self._settings.scopes_for_roles(user.roles)
        known = self._known(record, user, allowed)
        if known is not None:
            return known
        return self._remember(
            record,
            user,
            allowed,
            Principal(
                subject=str(user.id),
                username=user.username,
                kind=CredentialKind.SESSION,
                scopes=allowed,
                roles=user.roles,
                credential_id=record.id,
            ),
        )

    async def principal_from_bearer(self, token: str, schemes: Sequence[str]) -> Principal:
        try:
            claims = self._codec.verify(token)
            return await self._principal_for_claims(claims)
        except InvalidToken as exc:
            raise InvalidToken(exc.detail, schemes=schemes) from None

    async def principal_from_api_key(self, key: str, schemes: Sequence[str]) -> Principal:
        try:
            record = await self._keys.authenticate(key)
            user = await self._live_user(record.user_id)
        except (InvalidApiKey, InvalidToken) as exc:
            raise InvalidApiKey(exc.detail, schemes=schemes) from None
        allowed = self._settings.scopes_for_roles(user.roles)
        known = self._known(record, user, allowed)
        if known is not None:
            return known
        return self._remember(
            record,
            user,
            allowed,
            Principal(
                subject=str(user.id),
                username=user.username,
                kind=CredentialKind.API_KEY,
                scopes=record.scopes & allowed,
                roles=user.roles,
                credential_id=record.id,
                rate_limit=record.rate_limit,
            ),
        )

    async def _live_user(
        self, user_id: int, issued_at: float | None = None, *, whole_seconds: bool = False
    ) -> UserState:
        """The user behind a credential, if it may still act: it exists, is not disabled, and
        its credentials were not ended (password change, admin revoke) after ``issued_at``.

        A JWT's ``iat`` has whole seconds only, so for tokens the comparison is made in whole
        seconds; a token issued earlier in the very second of the change is caught instead by
        its refresh family, which the change revoked."""
        user = await self._users.get(user_id)
        if user is None or user.is_disabled:
            raise InvalidToken("The credential has been revoked.")
        if issued_at is not None:
            valid_after = user.credentials_valid_after
            if whole_seconds:
                valid_after = float(int(valid_after))
            if issued_at < valid_after:
                raise InvalidToken("The credential has been revoked.")
        return user

    async def _principal_for_claims(self, claims: AccessClaims) -> Principal:
        if await self._revocations.is_revoked(claims.token_id, claims.family_id):
            raise InvalidToken("The access token has been revoked.")
        user = await self._live_user(int(claims.subject), claims.issued_at, whole_seconds=True)
        allowed = self._settings.scopes_for_roles(user.roles)
        known = self._known(claims, user, allowed)
        if known is not None:
            return known
        return self._remember(
            claims,
            user,
            allowed,
            Principal(
                subject=claims.subject,
                username=user.username,
                kind=CredentialKind.BEARER,
                scopes=claims.scopes & allowed,
                roles=user.roles,
                credential_id=claims.token_id,
                family_id=claims.family_id,
                expires_at=claims.expires_at,
            ),
        )

    def _known(
        self, credential: object, user: UserState, allowed: frozenset[str]
    ) -> Principal | None:
        """The principal made of these three, if one was made while they were these objects.

        A principal is made of the verified credential (token claims, key or session record),
        the user's state and the scopes of the user's roles, each the cached object its own
        cache hands out; while all three are the very objects a principal was made from, that
        principal is still right. Revocation and the user's state are checked before, on every
        request all the same. Entries are found by the credential's ``id()``, which cannot be
        reused while the entry holds the credential itself."""
        made = self._principals.get(id(credential))
        if made is not None and made[0] is credential and made[1] is user and made[2] is allowed:
            return made[3]
        return None

    def _remember(
        self, credential: object, user: UserState, allowed: frozenset[str], principal: Principal
    ) -> Principal:
        if len(self._principals) >= PRINCIPALS_KEPT:
            del self._principals[next(iter(self._principals))]
        self._principals[id(credential)] = (credential, user, allowed, principal)
        return principal
