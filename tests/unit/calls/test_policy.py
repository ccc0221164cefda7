"""The vendor page's two 403 rules: your own extension, and calls you are a party to."""

from __future__ import annotations

import pytest

from hookswitch.calls.errors import NotOwner, NotParticipant
from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.policy import Principal, ensure_owner, ensure_participant

T = TenantId("b11d749b-8eb7-4236-a068-3d94ba3860d6")
JANE = Principal(user_id=UserId("u-210"), tenant_id=T, extension="210")


def test_the_owner_passes() -> None:
    ensure_owner(JANE, T, "210")


@pytest.mark.parametrize(("tenant", "extension"), [
    (T, "200"), ("5f0c7a52-9d61-4c3e-b1a4-0c2f6d1e9a77", "210"), (T, "2100"), (T, ""),
])
def test_anyone_else_is_not_the_owner(tenant: str, extension: str) -> None:
    with pytest.raises(NotOwner) as refused:
        ensure_owner(JANE, tenant, extension)
    assert "210" in refused.value.detail  # says whose token it is


def test_a_party_may_act_on_the_call() -> None:
    ensure_participant(JANE, {UserId("u-210"), UserId("u-200")})


def test_someone_outside_the_call_may_not() -> None:
    with pytest.raises(NotParticipant):
        ensure_participant(JANE, {UserId("u-200"), UserId("u-220")})
