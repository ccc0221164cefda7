"""Input and output schemas of the call-control endpoint and of the call listings (kept
apart, as the template does)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class UserRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tenant_id: str = Field(min_length=1, max_length=64,
                           examples=["b11d749b-8eb7-4236-a068-3d94ba3860d6"])
    user_extension: str = Field(min_length=1, max_length=16, examples=["210"])


class ClickToDialPayload(BaseModel):
    destination: str = Field(min_length=1, max_length=32, examples=["200", "+32470123456"],
                             description="an extension of the tenant or an E.164 number")


class HangupPayload(BaseModel):
    call_leg_id: str = Field(min_length=1, max_length=64,
                             examples=["b6b87eb5-04e4-4838-81b6-fe6bfa6936bf"])


class LegPayload(BaseModel):
    call_leg_id: str = Field(min_length=1, max_length=64,
                             examples=["b6b87eb5-04e4-4838-81b6-fe6bfa6936bf"],
                             description="one of the user's own legs, answered")


class TransferPayload(LegPayload):
    """Exactly one of ``destination`` (blind) and ``target_call_leg_id`` (attended)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["destination"], "not": {"required": ["target_call_leg_id"]}},
        {"required": ["target_call_leg_id"], "not": {"required": ["destination"]}},
    ]})

    destination: str | None = Field(
        default=None, min_length=1, max_length=32, examples=["202", "+32470123456"],
        description="blind: connect the other party to this extension or E.164 number")
    target_call_leg_id: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="attended: connect the other party to the other party of this leg "
                    "(another answered leg of the user, typically held)")

    @model_validator(mode="after")
    def _one_target(self) -> TransferPayload:
        if (self.destination is None) == (self.target_call_leg_id is None):
            raise ValueError("give exactly one of destination (a blind transfer) and "
                             "target_call_leg_id (an attended transfer)")
        return self


class ClickToDialRequest(BaseModel):
    command: Literal["click-to-dial"]
    user: UserRef
    payload: ClickToDialPayload


class HangupRequest(BaseModel):
    command: Literal["hangup"]
    user: UserRef
    payload: HangupPayload


class HoldRequest(BaseModel):
    command: Literal["hold"]
    user: UserRef
    payload: LegPayload


class ResumeRequest(BaseModel):
    command: Literal["resume"]
    user: UserRef
    payload: LegPayload


class TransferRequest(BaseModel):
    command: Literal["transfer"]
    user: UserRef
    payload: TransferPayload


class ClickToDialAccepted(BaseModel):
    """202: the user's phone is ringing with "(pick up to call)"."""

    call_leg_id: str = Field(description="the user's own leg; the id of its call events")
    call_id: str
    state: str = Field(examples=["RINGING"])


class HangupResult(BaseModel):
    """200: the leg's call has ended (or had ended already)."""

    call_leg_id: str
    call_id: str
    state: str = Field(examples=["HANGUP"])
    reason: str | None = Field(default=None, examples=["api"])


class LegStateResult(BaseModel):
    """200 to hold, resume and an attended transfer: the user's leg and its state now
    (HELD, ACTIVE; HANGUP after a transfer)."""

    call_leg_id: str
    state: str = Field(examples=["HELD"])


class TransferAccepted(BaseModel):
    """202 to a blind transfer: the user's leg has ended ``transferred``; the other party
    is being connected to the destination (the call events tell how it goes)."""

    call_leg_id: str
    state: str = Field(examples=["HANGUP"])
    transfer_call_leg_id: str | None = Field(
        description="the destination user's new leg (null for a number, or a user with no "
                    "phone to ring)")


class LiveCall(BaseModel):
    """A leg of the user's that has not ended: its state now, and its parties."""

    call_leg_id: str = Field(description="the user's leg; what hangup takes")
    call_id: str
    state: str = Field(examples=["RINGING", "ACTIVE", "HELD"])
    direction: str = Field(examples=["out", "in"])
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str
    since: str = Field(description="when the leg was created (a call's start, not its last "
                                   "state change), in µs since the epoch",
                       examples=["1765209366386177"])


class LiveCalls(BaseModel):
    """200: the user's live legs, newest first."""

    calls: list[LiveCall]


class CallSummary(BaseModel):
    """An ended leg: the same object as its ``summary`` event. Every value is a string;
    times are µs since the epoch, ``answered_at`` is "" for a call never answered,
    ``duration`` is the answered time in whole seconds and ``held_duration`` the part of it
    spent on hold."""

    type: Literal["summary"]
    tenant_id: str
    user_extension: str
    id: str = Field(description="the user's leg id (call_leg_id)")
    call_id: str
    sequence: str
    direction: str
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str
    started_at: str
    answered_at: str
    ended_at: str
    duration: str
    reason: str = Field(examples=["completed", "no-answer", "api"])
    timestamp: str
    held_duration: str


class CallHistory(BaseModel):
    """200: a page of the user's ended legs, newest first."""

    calls: list[CallSummary]
    next_cursor: str | None = Field(description="the cursor of the next page; null on the "
                                                "last one")


HealthStatus = Literal["ok", "starting", "stopping", "sip-down"]


class Health(BaseModel):
    """``/healthz``: ``ok`` (200) once SIP and HTTP are both up; otherwise (503) why not:
    ``starting``, ``stopping``, or ``sip-down`` (a SIP thread is gone)."""

    status: HealthStatus
