"""Input and output schemas of the call-control endpoint (kept apart, as the template does)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


class ClickToDialRequest(BaseModel):
    command: Literal["click-to-dial"]
    user: UserRef
    payload: ClickToDialPayload


class HangupRequest(BaseModel):
    command: Literal["hangup"]
    user: UserRef
    payload: HangupPayload


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


HealthStatus = Literal["ok", "starting", "stopping", "sip-down"]


class Health(BaseModel):
    """``/healthz``: ``ok`` (200) once SIP and HTTP are both up; otherwise (503) why not:
    ``starting``, ``stopping``, or ``sip-down`` (a SIP thread is gone)."""

    status: HealthStatus
