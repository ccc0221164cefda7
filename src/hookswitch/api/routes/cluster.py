"""What the nodes of a cluster ask each other (``api/forward.py``); not in the OpenAPI
document: clients never need it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hookswitch.api.auth import CurrentPrincipal
from hookswitch.api.errors import NotFound
from hookswitch.api.forward import WHO_HOLDS
from hookswitch.api.services import ServicesDep

router = APIRouter()


@router.get(WHO_HOLDS, include_in_schema=False)
async def who_holds(leg_id: str, services: ServicesDep,
                    principal: CurrentPrincipal) -> JSONResponse:
    """200 if this node's switch holds the leg (of the token's tenant: asked with the
    client's own token, it tells nothing the client's command would not)."""
    if not services.call_control.holds(leg_id, principal.tenant_id):
        raise NotFound(f"this node does not hold call leg {leg_id!r}")
    return JSONResponse({"call_leg_id": leg_id})
