"""An activation (one user's connection to one integration) as a pure state machine.

Rules:

- Subscribing issues the activation's first tokens and makes it ACTIVATING while the
  integrator's Activation URL is called.
- A 2xx from it makes the activation ACTIVE. Anything else (an error status, a timeout,
  a refused connection) makes it FAILED: its tokens are revoked, nothing is half-activated.
- An ACTIVE activation ENDS once, with a reason: the user disconnected (``user``), an
  operator ended it (``admin``), the integrator revoked its refresh token (``integrator``),
  a dead refresh token was used again (``refresh_token_reuse``), the user or the
  integration was removed, or a new activation of the same user replaced it
  (``replaced``). Its tokens are revoked. Every reason but ``replaced`` is announced on the
  Deactivation URL (the integrator has just received the new tokens of a replacement).
- Ending an activation that has ended or failed changes nothing (an explicit self-loop), so
  a second Disconnect or a revocation racing a reuse is harmless.
- Anything else raises ``IllegalTransition`` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActivationState(StrEnum):
    ACTIVATING = "activating"
    ACTIVE = "active"
    FAILED = "failed"
    ENDED = "ended"


class ActivationInput(StrEnum):
    ACCEPTED = "accepted"  # the Activation URL answered 2xx
    REFUSED = "refused"  # it answered otherwise, or did not answer in time
    END = "end"


class EndReason(StrEnum):
    USER = "user"
    ADMIN = "admin"
    INTEGRATOR = "integrator"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"
    USER_REMOVED = "user_removed"
    INTEGRATION_REMOVED = "integration_removed"
    REPLACED = "replaced"

    @property
    def announced(self) -> bool:
        """Whether the Deactivation URL is told."""
        return self is not EndReason.REPLACED


class IllegalTransition(Exception):
    code = "illegal-activation-transition"

    def __init__(self, state: ActivationState, event: ActivationInput) -> None:
        super().__init__(f"activation in state {state} cannot take {event}")
        self.state = state
        self.event = event


S, On = ActivationState, ActivationInput
_SELF = None

TRANSITIONS: dict[ActivationState, dict[ActivationInput, ActivationState | None]] = {
    S.ACTIVATING: {On.ACCEPTED: S.ACTIVE, On.REFUSED: S.FAILED, On.END: S.FAILED},
    S.ACTIVE: {On.END: S.ENDED},
    S.FAILED: {On.END: _SELF},
    S.ENDED: {On.END: _SELF},
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a transition asks for: revoke the tokens, announce the end (with a reason)."""

    state: ActivationState
    revoke_tokens: bool = False
    announce: EndReason | None = None


def step(state: ActivationState, event: ActivationInput,
         reason: EndReason | None = None) -> Outcome | None:
    """The outcome of ``event`` in ``state``; None for an allowed self-loop."""
    allowed = TRANSITIONS[state]
    if event not in allowed:
        raise IllegalTransition(state, event)
    if event is On.END and reason is None:
        raise ValueError("an activation cannot end without a reason")
    new_state = allowed[event]
    if new_state is None:
        return None
    if new_state is S.ACTIVE:
        return Outcome(new_state)
    if new_state is S.FAILED:
        return Outcome(new_state, revoke_tokens=True)
    assert reason is not None
    return Outcome(new_state, revoke_tokens=True,
                   announce=reason if reason.announced else None)
