"""Where a dialled string goes: always within the caller's tenant."""

from __future__ import annotations

import pytest

from hookswitch.calls.directory import Tenant, Trunk, User
from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.routing import ToTrunk, ToUser, Unroutable, is_e164, route

T = TenantId("b11d749b-8eb7-4236-a068-3d94ba3860d6")
JANE = User(id=UserId("u-210"), tenant_id=T, extension="210", name="Jane Doe", ha1_md5="",
            ha1_sha256="", numbers=("+3228990210",))
CARRIER = Trunk(tenant_id=T, name="carrier", host="127.0.0.1", port=5080)
SECOND = Trunk(tenant_id=T, name="second", host="127.0.0.1", port=5082)


def tenant(trunks: tuple[Trunk, ...] = (CARRIER, SECOND)) -> Tenant:
    return Tenant(id=T, name="Example", sip_domain=None, users={"210": JANE}, trunks=trunks)


def test_an_extension_of_the_tenant_is_its_user() -> None:
    assert route(tenant(), "210") == ToUser(JANE)


def test_a_number_of_one_of_its_users_stays_inside() -> None:
    assert route(tenant(), "+3228990210") == ToUser(JANE)


def test_other_e164_numbers_go_to_the_first_trunk() -> None:
    assert route(tenant(), "+32470123456") == ToTrunk(CARRIER, "+32470123456")


def test_a_number_without_a_trunk_is_refused_403() -> None:
    assert route(tenant(trunks=()), "+32470123456") == Unroutable(
        403, "No Trunk For External Calls")


@pytest.mark.parametrize("dialled", ["+0123456789", "+12", "+32 470", "+3247012345678901"])
def test_a_malformed_number_is_refused_484(dialled: str) -> None:
    assert route(tenant(), dialled) == Unroutable(484, "Address Incomplete")


@pytest.mark.parametrize("dialled", ["299", "", "sip:210@x", "2100"])
def test_anything_else_is_not_found(dialled: str) -> None:
    assert route(tenant(), dialled) == Unroutable(404, "Not Found")


@pytest.mark.parametrize(("value", "valid"), [
    ("+32470123456", True), ("+1234567", True), ("+123456", False),
    ("+123456789012345", True), ("+1234567890123456", False), ("32470123456", False),
])
def test_e164(value: str, valid: bool) -> None:
    assert is_e164(value) is valid
