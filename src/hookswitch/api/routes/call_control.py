"""``POST /v3/call_control/``: click-to-dial, hangup, hold, resume and transfer (rate-limit
scope ``call-control``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from hookswitch.api.auth import UNAUTHORIZED_ANSWER, CurrentPrincipal
from hookswitch.api.body import BodyError, normalise_body
from hookswitch.api.errors import InvalidFields, LegsOnDifferentNodes, RateLimited
from hookswitch.api.forward import FORWARDED_BY
from hookswitch.api.idempotency import MAX_KEY_LENGTH, fingerprint
from hookswitch.api.problems import (
    PROBLEM_JSON,
    documented_problem,
    field_errors,
    problem_body,
    quoted,
    status_of,
)
from hookswitch.api.ratelimit import RETRY_AFTER_HEADER, Verdict, documented_headers
from hookswitch.api.schemas import (
    ClickToDialAccepted,
    ClickToDialRequest,
    HangupRequest,
    HangupResult,
    HoldRequest,
    LegStateResult,
    ResumeRequest,
    TransferAccepted,
    TransferRequest,
)
from hookswitch.api.services import Services, ServicesDep
from hookswitch.calls.errors import CallControlError, HookswitchError, LegEnded, LegNotFound
from hookswitch.calls.policy import Principal
from hookswitch.metrics import API_REQUESTS

router = APIRouter(tags=["call control"])

CommandRequest = (ClickToDialRequest | HangupRequest | HoldRequest | ResumeRequest
                  | TransferRequest)
LEG_COMMANDS = ("hangup", "hold", "resume", "transfer")  # they name a call_leg_id
COMMANDS: dict[str, type[CommandRequest]] = {
    "click-to-dial": ClickToDialRequest,
    "hangup": HangupRequest,
    "hold": HoldRequest,
    "resume": ResumeRequest,
    "transfer": TransferRequest,
}


async def rate_limited(request: Request, services: ServicesDep,
                       principal: CurrentPrincipal) -> Verdict:
    """The ``call-control`` budget of the authenticated user; 429 when spent."""
    verdict = await services.rate_limiter.hit(principal.user_id)
    if not verdict.allowed:
        raise RateLimited(
            verdict.refusal() + " (Retry-After)",
            headers={**verdict.headers(), "Retry-After": str(verdict.retry_after)},
        )
    request.state.rate_limit_headers = verdict.headers()
    return verdict


# On every answer once the token is known, so not on 401, nor on a 413 for a declared
# length; always on 200, 202 and 429.
RATE_LIMIT = documented_headers(required=False)


def _problem(description: str) -> dict[str, Any]:
    return documented_problem(description, RATE_LIMIT)


def _command(body: dict[str, Any]) -> type[CommandRequest]:
    """The request model for the body's command; a 400 that says what is expected."""
    known = ", ".join(sorted(COMMANDS))
    command = body.get("command")
    if command is None:
        raise BodyError(f"the body has no command; use one of {known}")
    if not isinstance(command, str):
        raise BodyError(f"command must be a string: one of {known}")
    if command not in COMMANDS:
        raise BodyError(f"unknown command {quoted(command)}; use one of {known}")
    return COMMANDS[command]


@router.post(
    "/v3/call_control/",
    summary="Click-to-dial, hang up, hold, resume or transfer a call leg",
    description=(
        "`click-to-dial` rings the user's own phones first, showing \"(pick up to call)\"; "
        "when the user picks up, the destination is called and the two are connected. "
        "`hangup` ends the call a leg belongs to (CANCEL while ringing, BYE once answered). "
        "`hold` and `resume` act on one of the user's answered legs (the other party is "
        "re-invited `sendonly`/`sendrecv`, the user's phone `inactive`/`sendrecv`). "
        "`transfer` with `destination` (blind) connects the leg's other party to that "
        "extension or number; with `target_call_leg_id` (attended) it connects the other "
        "parties of two of the user's answered legs; the user's legs end `transferred`. "
        "The body may also be a JSON string holding the object, or have `user`/`payload` as "
        "strings holding a single-quoted dict (the vendor's PHP and C# samples)."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {
                "oneOf": [{"$ref": f"#/components/schemas/{model.__name__}"}
                          for model in COMMANDS.values()],
                "discriminator": {"propertyName": "command"},
            }}},
        },
        "x-rate-limit-scope": "call-control",
    },
    status_code=202,
    response_model=ClickToDialAccepted,
    responses={
        202: {"model": ClickToDialAccepted | TransferAccepted,
              "description": "click-to-dial: the user's phones are ringing; transfer with "
                             "`destination`: the other party is being connected to it",
              "headers": documented_headers(required=True)},
        200: {"model": HangupResult | LegStateResult,
              "description": "hangup: the call has ended; hold, resume, transfer with "
                             "`target_call_leg_id`: the leg's state now",
              "headers": documented_headers(required=True)},
        400: _problem("the body is not JSON in an accepted form, or the command is unknown"),
        401: UNAUTHORIZED_ANSWER,
        403: _problem("not your extension, not a party to the call, or (hold, resume, "
                      "transfer) another user's leg (`not-leg-owner`)"),
        404: _problem("no such call leg in your tenant"),
        409: _problem("the user has no registered phone; or (hold, resume, transfer) the "
                      "leg is not answered yet (`not-answered`) or has ended (`ended`); or "
                      "(attended transfer in a cluster) the two legs are held by different "
                      "nodes (`legs-on-different-nodes`); or (click-to-dial) a request "
                      "with this Idempotency-Key is still in progress "
                      "(`idempotency-key-in-use`)"),
        413: _problem("the body is over server.max_body_bytes"),
        422: _problem("field problems, listed in `errors`; or an Idempotency-Key first used "
                      "with another request (`idempotency-key-reused`)"),
        429: documented_problem("over the call-control rate limit",
                                {**RETRY_AFTER_HEADER, **documented_headers(required=True)}),
        503: documented_problem("in a cluster: the node that holds the leg did not answer "
                                "in time (`node-unavailable`), or the cluster's Redis is "
                                "not reachable (`shared-state-unavailable`)",
                                RETRY_AFTER_HEADER),
    },
)
async def call_control(
    request: Request,
    services: ServicesDep,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_LENGTH)] = None,
) -> Response:
    raw = await request.body()
    forwarded = await _forwarded(request, services, principal, raw)
    if forwarded is not None:
        # The owner counted it against the budget and in its metrics: not counted here,
        # so that switching nodes neither doubles nor halves a client's budget.
        return forwarded
    verdict = await rate_limited(request, services, principal)
    counted, status = "other", 500  # (a command counts by its name once it is known)
    try:
        body = normalise_body(raw)
        command = body.get("command")
        if isinstance(command, str) and command in COMMANDS:
            counted = command
        status, answer = await _carry_out(services, principal, body, idempotency_key,
                                          request.headers.get("Authorization"))
    except HookswitchError as error:
        status = status_of(error)
        raise
    finally:
        API_REQUESTS.labels(counted, str(status)).inc()
    return JSONResponse(answer, status_code=status, headers=verdict.headers(),
                        media_type=PROBLEM_JSON if status >= 400 else None)


async def _forwarded(request: Request, services: Services, principal: Principal,
                     raw: bytes) -> Response | None:
    """The answer of the node that holds the command's leg, when another live node of the
    cluster does (api/forward.py); None when this node answers. A forwarded request is
    answered where it arrives: it never goes on (no loops)."""
    forwarder = services.forwarder
    if forwarder is None or FORWARDED_BY in request.headers:
        return None
    leg_id = _leg_of(raw)
    if leg_id is None or services.call_control.holds(leg_id, principal.tenant_id):
        return None
    owner = await forwarder.owner(leg_id, principal.tenant_id,
                                  request.headers.get("Authorization"))
    if owner is None:
        return None
    answer = await forwarder.forward(owner, request.method, request.url.path, raw,
                                     request.headers)
    if answer is None:
        return None
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def _leg_of(raw: bytes) -> str | None:
    """The leg a leg command names, if the body says so plainly; anything else (click-to-
    dial, a body with errors) is answered here, where it is validated."""
    try:
        body = normalise_body(raw)
    except BodyError:
        return None
    payload = body.get("payload")
    if body.get("command") not in LEG_COMMANDS or not isinstance(payload, dict):
        return None
    leg_id = payload.get("call_leg_id")
    return leg_id if isinstance(leg_id, str) and leg_id else None


async def _carry_out(services: Services, principal: Principal, body: dict[str, Any],
                     idempotency_key: str | None,
                     authorization: str | None) -> tuple[int, dict[str, Any]]:
    try:
        parsed = _command(body).model_validate(body)
    except ValidationError as exc:
        raise InvalidFields(field_errors(exc.errors())) from exc
    if not isinstance(parsed, ClickToDialRequest):
        status, answer = await _leg_command(services, principal, parsed, authorization)
    elif idempotency_key:
        # Authorisation first: a stored answer is only ever given to its owner's request.
        services.call_control.authorise_click_to_dial(
            principal, parsed.user.tenant_id, parsed.user.user_extension)
        status, answer, _ = await services.idempotency.once(
            principal.user_id, idempotency_key, fingerprint(parsed.model_dump(mode="json")),
            lambda: _click_to_dial(services, principal, parsed),
        )
    else:
        status, answer = await _click_to_dial(services, principal, parsed)
    return status, answer


async def _same_node(services: Services, principal: Principal, leg_id: str,
                     target_leg_id: str, authorization: str | None) -> None:
    """Attended transfer joins two calls in one switch: when this node holds the first leg
    and another live node the target, the target looked ended or unknown here; it is a 409
    (``legs-on-different-nodes``) instead. Asked only after both legs passed their owner
    checks, so it tells nothing about another user's leg. The client may transfer blind
    instead, to the target's party."""
    forwarder = services.forwarder
    holds = services.call_control.holds
    if (forwarder is None or not holds(leg_id, principal.tenant_id)
            or holds(target_leg_id, principal.tenant_id)):
        return
    owner = await forwarder.owner(target_leg_id, principal.tenant_id, authorization)
    if owner is not None:
        raise LegsOnDifferentNodes(
            f"call leg {target_leg_id} is held by node {owner.node_id}, the other by node "
            f"{forwarder.node_id}: an attended transfer needs both calls on one node; "
            "transfer blind to the other party's number instead")


async def _click_to_dial(services: Services, principal: Principal,
                         request: ClickToDialRequest) -> tuple[int, dict[str, Any]]:
    try:
        started = await services.call_control.click_to_dial(
            principal, request.user.tenant_id, request.user.user_extension,
            request.payload.destination,
        )
    except CallControlError as error:
        # Answered (not raised) so that an idempotent retry replays the same refusal.
        return status_of(error), problem_body(error)
    answer = ClickToDialAccepted(call_leg_id=started.call_leg_id, call_id=started.call_id,
                                 state=started.state.value)
    return 202, answer.model_dump()


async def _leg_command(services: Services, principal: Principal,
                       request: HangupRequest | HoldRequest | ResumeRequest | TransferRequest,
                       authorization: str | None) -> tuple[int, dict[str, Any]]:
    """The commands that act on a leg: their errors are raised (problem+json)."""
    control = services.call_control
    user = (principal, request.user.tenant_id, request.user.user_extension)
    leg_id = request.payload.call_leg_id
    match request:
        case HangupRequest():
            done = await control.hangup(*user, leg_id)
            return 200, HangupResult(call_leg_id=done.call_leg_id, call_id=done.call_id,
                                     state=done.state.value, reason=done.reason).model_dump()
        case HoldRequest() | ResumeRequest():
            act = control.hold if isinstance(request, HoldRequest) else control.resume
            now = await act(*user, leg_id)
        case TransferRequest(payload=payload) if payload.destination is not None:
            started = await control.transfer(*user, leg_id, payload.destination)
            return 202, TransferAccepted(
                call_leg_id=started.call_leg_id, state=started.state.value,
                transfer_call_leg_id=started.transfer_call_leg_id).model_dump()
        case TransferRequest(payload=payload):
            assert payload.target_call_leg_id is not None  # the model's rule
            try:
                now = await control.attended_transfer(*user, leg_id,
                                                      payload.target_call_leg_id)
            except (LegEnded, LegNotFound):
                await _same_node(services, principal, leg_id, payload.target_call_leg_id,
                                 authorization)
                raise
    return 200, LegStateResult(call_leg_id=now.call_leg_id, state=now.state.value).model_dump()
