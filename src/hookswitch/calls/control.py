"""The call-control service: click-to-dial, hangup, hold, resume and transfer, as the API
asks for them.

It runs on the asyncio loop, beside the switch (one thread owns the domain). Ownership is
checked here, not in the route (wazo-calld's rule), so every caller of the service gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hookswitch.calls.directory import User
from hookswitch.calls.errors import (
    LegEnded,
    LegNotFound,
    NotAnswered,
    NotLegOwner,
    NotOwner,
)
from hookswitch.calls.ids import CallId, LegId
from hookswitch.calls.leg import Leg, LegState, LegView
from hookswitch.calls.policy import Principal, ensure_owner, ensure_participant
from hookswitch.calls.switch import Effect, Switch

# SIP ends a call, and reports a hold, at once (before any phone answers a re-INVITE):
# this only bounds a slow loop.
CONFIRM_TIMEOUT = 2.0


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


@dataclass(frozen=True, slots=True, kw_only=True)
class LegStateNow:
    """Hold, resume, attended transfer: the user's leg and its state after the command."""

    call_leg_id: LegId
    state: LegState


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferStarted:
    """A blind transfer: the user's leg (ended ``transferred``) and the destination user's
    new leg, if the destination is a user with a phone to ring."""

    call_leg_id: LegId
    state: LegState
    transfer_call_leg_id: LegId | None


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
        # Requests waiting for a leg to reach a state: (condition, woken when it holds).
        self._waiting: list[tuple[Callable[[], bool], asyncio.Event]] = []

    def calls_changed(self) -> None:
        """Told by the server after every signal from SIP has been applied."""
        for condition, event in self._waiting:
            if condition():
                event.set()

    async def _until(self, condition: Callable[[], bool]) -> None:
        """Wait (bounded) until ``condition`` holds; the caller answers with what is then."""
        if condition():
            return
        waiter = (condition, asyncio.Event())
        self._waiting.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter[1].wait(), CONFIRM_TIMEOUT)
        finally:
            self._waiting.remove(waiter)

    def holds(self, leg_id: str, tenant_id: str) -> bool:
        """This node's switch holds the tenant's leg, not ended (in a cluster, the other
        nodes forward its commands here)."""
        live = self._switch.live_leg(LegId(leg_id))
        return live is not None and live.tenant_id == tenant_id and not live.ended

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
            call = self._switch.call_of(live)
            ensure_participant(principal, {leg.user_id for leg in call.legs})
            # A leg transferred away has ended; the call it handed on is not its to end.
            if not live.ended:
                self._carry_out(self._switch.hangup(call.id))
                await self._until(lambda: live.ended)
            return HangupDone(call_leg_id=live.id, call_id=live.call_id, state=live.state,
                              reason=live.reason.value if live.reason else None)
        stored = await self._stored_in_tenant(principal, leg_id)
        ensure_participant(principal, set(stored.parties))
        # Ended already (or being torn down, its last change not yet written): not an error.
        return HangupDone(call_leg_id=stored.id, call_id=stored.call_id, state=stored.state,
                          reason=stored.reason)

    async def hold(self, principal: Principal, tenant_id: str, extension: str,
                   leg_id: str) -> LegStateNow:
        """Hold the user's answered call: the other party hears nothing, the user's phone
        shows it held. Held already: nothing to do."""
        return await self._hold(principal, tenant_id, extension, leg_id, held=True)

    async def resume(self, principal: Principal, tenant_id: str, extension: str,
                     leg_id: str) -> LegStateNow:
        return await self._hold(principal, tenant_id, extension, leg_id, held=False)

    async def _hold(self, principal: Principal, tenant_id: str, extension: str, leg_id: str,
                    *, held: bool) -> LegStateNow:
        leg = await self._own_answered_leg(principal, tenant_id, extension, leg_id)
        before = LegState.ACTIVE if held else LegState.HELD
        if leg.state is before:
            self._carry_out(self._switch.hold(leg) if held else self._switch.resume(leg))
            await self._until(lambda: leg.state is not before)
        return LegStateNow(call_leg_id=leg.id, state=leg.state)

    async def transfer(self, principal: Principal, tenant_id: str, extension: str,
                       leg_id: str, destination: str) -> TransferStarted:
        """Blind transfer; what happens next is told by the call events (the contract:
        README, "Transfer")."""
        leg = await self._own_answered_leg(principal, tenant_id, extension, leg_id)
        new_leg, effects = self._switch.transfer(leg, destination, self._now_us())
        self._carry_out(effects)
        return TransferStarted(call_leg_id=leg.id, state=leg.state,
                               transfer_call_leg_id=new_leg.id if new_leg else None)

    async def attended_transfer(self, principal: Principal, tenant_id: str, extension: str,
                                leg_id: str, target_leg_id: str) -> LegStateNow:
        leg = await self._own_answered_leg(principal, tenant_id, extension, leg_id)
        target = await self._own_answered_leg(principal, tenant_id, extension, target_leg_id)
        self._carry_out(self._switch.merge(leg, target, self._now_us()))
        return LegStateNow(call_leg_id=leg.id, state=leg.state)

    async def _own_answered_leg(self, principal: Principal, tenant_id: str, extension: str,
                                leg_id: str) -> Leg:
        """The user's own leg, answered (ACTIVE or HELD), for a command that acts on it.
        Another tenant's leg is answered like one that does not exist."""
        ensure_owner(principal, tenant_id, extension)
        live = self._switch.live_leg(LegId(leg_id))
        if live is not None and live.tenant_id == principal.tenant_id:
            _ensure_own(principal, live.user_id, leg_id)
            if live.ended:
                raise LegEnded(f"call leg {leg_id} has ended ({live.reason})")
            if not live.answered:
                raise NotAnswered(f"call leg {leg_id} is {live.state}: it can be held or "
                                  "transferred once it is answered (ACTIVE or HELD)")
            return live
        stored = await self._stored_in_tenant(principal, leg_id)
        _ensure_own(principal, stored.user_id, leg_id)
        raise LegEnded(f"call leg {leg_id} has ended ({stored.reason})")


    async def _stored_in_tenant(self, principal: Principal, leg_id: str) -> LegView:
        """A leg that has left memory, of the principal's tenant. Another tenant's leg is
        answered exactly like one that does not exist."""
        stored = await self._stored_leg(LegId(leg_id))
        if stored is None or stored.tenant_id != principal.tenant_id:
            raise LegNotFound(f"no call leg {leg_id!r} in tenant {principal.tenant_id}; use a "
                              "call_leg_id from click-to-dial or from a call event's id")
        return stored


def _ensure_own(principal: Principal, user_id: str, leg_id: str) -> None:
    if user_id != principal.user_id:
        raise NotLegOwner(f"call leg {leg_id} is another user's; extension "
                          f"{principal.extension} can hold and transfer only its own legs")
