"""Public routes: liveness, readiness, the JWKS (every protected app gets them) and the reference
server's ``/public`` (SPEC §4.1), which ``Bastion.protect`` does not force on a user's app."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bastion.api.dependencies import bastion_of
from bastion.api.schemas import Message
from bastion.errors import ServiceUnavailable

router = APIRouter(tags=["public"])
reference_router = APIRouter(tags=["public"])


@reference_router.get("/public", response_model=Message)
async def public() -> Message:
    return Message(message="Anyone can see this")


@router.get("/health")
async def health() -> dict[str, str]:
    """The process runs and its event loop answers; says nothing of the backends."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> dict[str, object]:
    """200 when every configured backend answers, else 503 naming which is down."""
    checks = await bastion_of(request).readiness()
    if any(state != "ok" for state in checks.values()):
        raise ServiceUnavailable("A backing service is unavailable.", retry_after=5, checks=checks)
    return {"status": "ok", "checks": checks}


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    """Public verification keys (RFC 7517); empty for HS256, whose key is never published."""
    return JSONResponse(
        bastion_of(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )
