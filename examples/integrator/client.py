"""The example integrator's calls to hookswitch: refresh a token pair, revoke a refresh
token, place a click-to-dial. Every call has a timeout; no token or secret is logged."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger("integrator.client")

# hookswitch answers a reused refresh token with the same pair only within its grace
# window (server.refresh_grace, 10 s after the rotation); later, the reuse counts as theft
# and ends the activation. So a token request whose answer is lost must be retried well
# inside those 10 s: 5 s at most per phase, and the one retry comes at once.
TOKEN_TIMEOUT = httpx.Timeout(5.0)
# Call control: the answer comes before any phone rings (202), so 10 s is generous.
API_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class HookswitchError(Exception):
    """hookswitch could not be reached, or answered what the contract does not allow."""


class GrantRefused(HookswitchError):
    """``400 invalid_grant`` on a refresh: the refresh token is dead, and the activation
    with it (revoked, expired, or ended because an old refresh token was reused)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """The answer of ``POST /oauth/token``."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scope: str


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """What ``POST /v3/call_control/`` answered: a 202 with the user's leg, or a problem."""

    status: int
    call_leg_id: str | None
    detail: str


def _oauth_error(answer: httpx.Response) -> str:
    """The ``error`` code of an RFC 6749 error body, or what the body was."""
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return answer.text[:200] or "(no body)"


def _json_field(answer: httpx.Response, name: str) -> object:
    try:
        return answer.json()[name]
    except (ValueError, KeyError, TypeError):
        return "?"


def _problem_detail(answer: httpx.Response) -> str:
    """An RFC 9457 problem's ``detail`` (else its ``title``), or the start of the body."""
    try:
        problem: Any = answer.json()
        return str(problem.get("detail") or problem.get("title") or problem)
    except (ValueError, AttributeError):
        return answer.text[:200] or "(no body)"


def _tokens(answer: httpx.Response) -> Tokens:
    try:
        body = answer.json()
        return Tokens(access_token=str(body["access_token"]),
                      refresh_token=str(body["refresh_token"]),
                      expires_in=int(body["expires_in"]), scope=str(body.get("scope", "")))
    except (ValueError, KeyError, TypeError) as error:
        raise HookswitchError("/oauth/token answered 200 without a token pair") from error


class HookswitchClient:
    """One connection pool to hookswitch for all the calls above."""

    def __init__(self, base_url: str, client_id: str, client_secret: str) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, follow_redirects=False)
        # RFC 6749 §2.3.1: id and secret are form-encoded before they go into Basic.
        self._client_auth = httpx.BasicAuth(quote(client_id, safe=""),
                                            quote(client_secret, safe=""))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def refresh(self, refresh_token: str) -> Tokens:
        """A new access token AND a new refresh token; ``refresh_token`` is dead after this.
        Raises GrantRefused when the activation is gone."""
        answer = await self._token_endpoint(
            "/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})
        if answer.status_code == 200:
            return _tokens(answer)
        error = _oauth_error(answer)
        if answer.status_code == 400 and error == "invalid_grant":
            raise GrantRefused("hookswitch refused the refresh token (invalid_grant)")
        raise HookswitchError(f"/oauth/token answered {answer.status_code} {error}")

    async def revoke(self, refresh_token: str) -> None:
        """RFC 7009: revoking the refresh token ends the activation (hookswitch then calls
        the Deactivation URL with reason ``integrator``)."""
        answer = await self._token_endpoint(
            "/oauth/revoke", {"token": refresh_token, "token_type_hint": "refresh_token"})
        if answer.status_code != 200:
            raise HookswitchError(
                f"/oauth/revoke answered {answer.status_code} {_oauth_error(answer)}")

    async def _token_endpoint(self, path: str, form: dict[str, str]) -> httpx.Response:
        """POST a form with the client's authentication."""
        return await self._post(path, data=form, auth=self._client_auth, timeout=TOKEN_TIMEOUT)

    async def _post(self, path: str, **request: Any) -> httpx.Response:
        """POST, and once more at once when no answer came. Safe for all three calls: a
        refresh repeated within the grace window gets the same pair, a revocation is
        idempotent, a click-to-dial with the same Idempotency-Key rings nobody twice."""
        for attempt in (1, 2):
            try:
                return await self._http.post(path, **request)
            except httpx.TransportError as error:
                log.warning("%s: attempt %d failed: %s", path, attempt, type(error).__name__)
                if attempt == 2:
                    raise HookswitchError(
                        f"hookswitch did not answer {path} ({type(error).__name__})") from error
        raise AssertionError("unreachable")

    async def click_to_dial(self, access_token: str, tenant_id: str, user_extension: str,
                            destination: str) -> CallAnswer:
        """Ring the user's phones, then ``destination``. Sent with an Idempotency-Key, so
        the retry after a lost answer rings nobody twice."""
        body = {"command": "click-to-dial",
                "user": {"tenant_id": tenant_id, "user_extension": user_extension},
                "payload": {"destination": destination}}
        headers = {"Authorization": f"Bearer {access_token}",
                   "Idempotency-Key": str(uuid.uuid4())}
        answer = await self._post("/v3/call_control/", json=body, headers=headers,
                                  timeout=API_TIMEOUT)
        if answer.status_code == 202:
            leg = str(_json_field(answer, "call_leg_id"))
            return CallAnswer(202, leg, f"ringing your phone first (call_leg_id {leg})")
        return CallAnswer(answer.status_code, None, _problem_detail(answer))
