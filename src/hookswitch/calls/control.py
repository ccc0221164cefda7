"""The call-control service: click-to-dial and hangup, as the API asks for them.

It runs on the asyncio loop, beside the switch (one thread owns the domain). Ownership is
checked here, not in the route (wazo-calld's rule), so every caller of the service gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hookswitch.calls.directory import User
from hookswitch.calls.errors import LegNotFound, NotOwner
from hookswitch.calls.ids import CallId, LegId
from hookswitch.calls.leg import LegState, LegView
from hookswitch.calls.policy import Principal, ensure_owner, ensure_participant
from hookswitch.calls.switch import Effect, Switch

HANGUP_CONFIRM_TIMEOUT = 2.0  # SIP ends the call at once; this only bounds a slow loop


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickToDialStarted:
    call_leg_id: LegId
    call_id: CallId
    state: LegState


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupDone:
    call_leg_id: LegId
    call_id: CallId
    state: LegState
    reason: str | None


class CallControl:
    def __init__(
        self,
        switch: Switch,
        carry_out: Callable[[list[Effect]], None],
        stored_leg: Callable[[LegId], Awaitable[LegView | None]],
        now_us: Callable[[], int],
        new_call_id: Callable[[], CallId],
    ) -> None:
        self._switch = switch
        self._carry_out = carry_out
        self._stored_leg = stored_leg
        self._now_us = now_us
        self._new_call_id = new_call_id
        self._ended: dict[CallId, asyncio.Event] = {}

    def call_ended(self, call_id: CallId) -> None:
        """Told by the server when a call's legs have all ended."""
        event = self._ended.pop(call_id, None)
        if event is not None:
            event.set()

    def authorise_click_to_dial(self, principal: Principal, tenant_id: str,
                                extension: str) -> User:
        """The token's user owns ``user`` and still exists. Asked first, before anything
        else is looked at (an Idempotency-Key's stored answer too)."""
        ensure_owner(principal, tenant_id, extension)
        user = self._switch.directory.user(principal.user_id)
        if user is None:  # the token outlived its user (removed from provisioning)
            raise NotOwner(f"extension {extension} was removed from tenant {tenant_id}; "
                           "this token acts for no one now")
        return user

    async def click_to_dial(
        self, principal: Principal, tenant_id: str, extension: str, destination: str
    ) -> ClickToDialStarted:
        user = self.authorise_click_to_dial(principal, tenant_id, extension)
        leg, effects = self._switch.click_to_dial(
            self._new_call_id(), user, destination, self._now_us()
        )
        self._carry_out(effects)
        return ClickToDialStarted(call_leg_id=leg.id, call_id=leg.call_id, state=leg.state)

    async def hangup(
        self, principal: Principal, tenant_id: str, extension: str, leg_id: str
    ) -> HangupDone:
        ensure_owner(principal, tenant_id, extension)
        live = self._switch.live_leg(LegId(leg_id))
        if live is not None and live.tenant_id == principal.tenant_id:
            call = self._switch.calls[live.call_id]
            ensure_participant(principal, {leg.user_id for leg in call.legs})
            ended = self._ended.setdefault(live.call_id, asyncio.Event())
            self._carry_out(self._switch.hangup(live.call_id))
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), HANGUP_CONFIRM_TIMEOUT)
            finally:
                self._ended.pop(live.call_id, None)
            return HangupDone(call_leg_id=live.id, call_id=live.call_id, state=live.state,
                              reason=live.reason.value if live.reason else None)
        stored = await self._stored_leg(LegId(leg_id))
        if stored is None or stored.tenant_id != principal.tenant_id:
            # Another tenant's leg is answered exactly like one that does not exist.
            raise LegNotFound(f"no call leg {leg_id!r} in tenant {principal.tenant_id}; use a "
                              "call_leg_id from click-to-dial or from a call event's id")
        ensure_participant(principal, set(stored.parties))
        # Ended already (or being torn down, its last change not yet written): not an error.
        return HangupDone(call_leg_id=stored.id, call_id=stored.call_id, state=stored.state,
                          reason=stored.reason)
