"""``GET /metrics``: Prometheus text, for credentials holding ``metrics:read`` (SPEC §4.6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from bastion.api.dependencies import bastion_of, require
from bastion.principal import Principal

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
async def metrics(
    request: Request, _reader: Annotated[Principal, require("metrics:read")]
) -> Response:
    bastion = bastion_of(request)
    bastion.request_log.flush()  # the requests that ended in this turn of the loop count too
    collected = bastion.metrics
    return Response(collected.exposition(), media_type=collected.content_type)
