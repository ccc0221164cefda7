"""``POST /v3/call_control/``: click-to-dial, hangup, hold, resume and transfer (rate-limit
scope ``call-control``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from hookswitch.api.auth import UNAUTHORIZED_ANSWER, CurrentPrincipal
from hookswitch.api.body import BodyError, normalise_body
from hookswitch.api.errors import InvalidFields, RateLimited
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
from hookswitch.calls.errors import CallControlError, HookswitchError
from hookswitch.calls.policy import Principal
from hookswitch.metrics import API_REQUESTS

router = APIRouter(tags=["call control"])

CommandRequest = (ClickToDialRequest | HangupRequest | HoldRequest | ResumeRequest
                  | TransferRequest)
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
                      "leg is not answered yet (`not-answered`) or has ended (`ended`)"),
        413: _problem("the body is over server.max_body_bytes"),
        422: _problem("field problems, listed in `errors`; or an Idempotency-Key first used "
                      "with another request (`idempotency-key-reused`)"),
        429: documented_problem("over the call-control rate limit",
                                {**RETRY_AFTER_HEADER, **documented_headers(required=True)}),
    },
)
async def call_control(
    request: Request,
    services: ServicesDep,
    principal: CurrentPrincipal,
    verdict: Annotated[Verdict, Depends(rate_limited)],
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_LENGTH)] = None,
) -> JSONResponse:
    counted, status = "other", 500  # (a command counts by its name once it is known)
    try:
        body = normalise_body(await request.body())
        command = body.get("command")
        if isinstance(command, str) and command in COMMANDS:
            counted = command
        status, answer = await _carry_out(services, principal, body, idempotency_key)
    except HookswitchError as error:
        status = status_of(error)
        raise
    finally:
        API_REQUESTS.labels(counted, str(status)).inc()
    return JSONResponse(answer, status_code=status, headers=verdict.headers(),
                        media_type=PROBLEM_JSON if status >= 400 else None)


async def _carry_out(services: Services, principal: Principal, body: dict[str, Any],
                     idempotency_key: str | None) -> tuple[int, dict[str, Any]]:
    try:
        parsed = _command(body).model_validate(body)
    except ValidationError as exc:
        raise InvalidFields(field_errors(exc.errors())) from exc
    if not isinstance(parsed, ClickToDialRequest):
        status, answer = await _leg_command(services, principal, parsed)
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
                       ) -> tuple[int, dict[str, Any]]:
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
            now = await control.attended_transfer(*user, leg_id, payload.target_call_leg_id)
    return 200, LegStateResult(call_leg_id=now.call_leg_id, state=now.state.value).model_dump()
