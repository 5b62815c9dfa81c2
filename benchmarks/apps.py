"""The applications under load: one factory per variant, for ``uvicorn benchmarks.apps:NAME
--factory``.

Every variant answers the same tiny JSON body on its measured route, so that the only difference
between two variants is what protects the route. Configuration comes from the environment the
runner gives each server process: ``BENCH_DATA_DIR`` (a fresh temporary directory),
``BENCH_SECRET`` (a fixed signing secret) and, for Bastion, the ``BASTION_*`` settings.

The peers are set up the way their documentation shows; nothing is tuned in their favour or
against them. Their packages live in the ``bench`` dependency group, so they are imported inside
the factories: the Bastion-only variants run without them.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

HELLO = {"message": "hello"}
TOKEN_LIFETIME = 3600
"""Access tokens outlive a whole run (the default 15 minutes could expire mid-run)."""


def _data_dir() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", "."))


def _secret() -> str:
    return os.environ["BENCH_SECRET"]


# ------------------------------------------------------------------------------------ baseline


def baseline_app() -> FastAPI:
    """Plain FastAPI: the yardstick every ratio is taken against."""
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return HELLO

    return app


# ------------------------------------------------------------------------------------- bastion


def bastion_app() -> FastAPI:
    """One Bastion-protected app, as the README shows it; each Bastion variant loads one route.

    ``/hello`` is public (the edge and the per-IP limit only); ``/bearer``, ``/key`` and
    ``/session`` each accept one scheme, through the full stack: edge, request log, limits,
    credential verification, revocation and user-state checks. Logging is configured the way
    ``bastion serve`` does it, in the production format (JSON, one line per request, written to
    the server's log file), since that line is part of what Bastion costs per request."""
    from bastion import Bastion, Principal
    from bastion.logs import configure_logging

    guard = Bastion.from_env()
    configure_logging(guard.settings)  # as `bastion serve` does: one JSON line per request
    app = FastAPI(lifespan=guard.lifespan)
    guard.protect(app)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return HELLO

    @app.get("/bearer")
    async def bearer(user: Annotated[Principal, guard.require()]) -> dict[str, str]:
        return HELLO

    @app.get("/key")
    async def key(
        user: Annotated[Principal, guard.require(schemes=("api_key",))],
    ) -> dict[str, str]:
        return HELLO

    @app.get("/session")
    async def session(
        user: Annotated[Principal, guard.require(schemes=("session",))],
    ) -> dict[str, str]:
        return HELLO

    return app


# --------------------------------------------------------------------------------------- peers


def slowapi_app() -> FastAPI:
    """slowapi's documented setup: an in-memory limit on the hello route, keyed by client IP."""
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address)
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/hello")
    @limiter.limit("100000000/minute")
    async def hello(request: Request) -> dict[str, str]:
        return HELLO

    return app


def authx_app() -> FastAPI:
    """AuthX with an HS256 access token read from the ``Authorization`` header."""
    from authx import AuthX, AuthXConfig

    config = AuthXConfig(
        JWT_SECRET_KEY=_secret(),
        JWT_ALGORITHM="HS256",
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=TOKEN_LIFETIME),
    )
    security = AuthX(config=config)
    app = FastAPI()
    security.handle_errors(app)

    @app.post("/login")
    async def login() -> dict[str, str]:
        """AuthX keeps no users: the app checks credentials itself, then issues a token."""
        return {"access_token": security.create_access_token(uid="bench")}

    @app.get("/hello", dependencies=[Depends(security.access_token_required)])
    async def hello() -> dict[str, str]:
        return HELLO

    return app


def fastapi_users_app() -> FastAPI:
    """fastapi-users' documented SQLAlchemy setup on SQLite: JWT bearer, ``current_active_user``."""
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
    from fastapi_users.authentication import (
        AuthenticationBackend,
        BearerTransport,
        JWTStrategy,
    )
    from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        pass

    class User(SQLAlchemyBaseUserTableUUID, Base):
        pass

    class UserRead(schemas.BaseUser[uuid.UUID]):
        pass

    class UserCreate(schemas.BaseUserCreate):
        pass

    engine = create_async_engine(f"sqlite+aiosqlite:///{_data_dir() / 'users.db'}")
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    secret = _secret()

    async def get_async_session() -> AsyncIterator[AsyncSession]:
        async with session_maker() as session:
            yield session

    async def get_user_db(
        session: Annotated[AsyncSession, Depends(get_async_session)],
    ) -> AsyncIterator[SQLAlchemyUserDatabase[Any, Any]]:
        yield SQLAlchemyUserDatabase(session, User)

    class UserManager(UUIDIDMixin, BaseUserManager[Any, uuid.UUID]):
        reset_password_token_secret = secret
        verification_token_secret = secret

    async def get_user_manager(
        user_db: Annotated[SQLAlchemyUserDatabase[Any, Any], Depends(get_user_db)],
    ) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    def get_jwt_strategy() -> JWTStrategy[Any, uuid.UUID]:
        return JWTStrategy(secret=secret, lifetime_seconds=TOKEN_LIFETIME)

    backend = AuthenticationBackend(
        name="jwt",
        transport=BearerTransport(tokenUrl="auth/jwt/login"),
        get_strategy=get_jwt_strategy,
    )
    users = FastAPIUsers[Any, uuid.UUID](get_user_manager, [backend])
    current_active_user = users.current_user(active=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(users.get_auth_router(backend), prefix="/auth/jwt")
    app.include_router(users.get_register_router(UserRead, UserCreate), prefix="/auth")

    @app.get("/hello")
    async def hello(user: Annotated[Any, Depends(current_active_user)]) -> dict[str, str]:
        return HELLO

    return app
