"""The users and the directory the call-domain tests share (in memory)."""

from __future__ import annotations

from hookswitch.calls.directory import Directory, Tenant, Trunk, User
from hookswitch.calls.ids import TenantId, UserId

T1 = TenantId("b11d749b-8eb7-4236-a068-3d94ba3860d6")
T2 = TenantId("22222222-2222-4222-8222-222222222222")


def user(tenant: TenantId, ext: str, name: str, numbers: tuple[str, ...] = ()) -> User:
    return User(id=UserId(f"{tenant[:4]}-{ext}"), tenant_id=tenant, extension=ext, name=name,
                ha1_md5="x", ha1_sha256="y", numbers=numbers)


JANE = user(T1, "210", "Jane Doe", ("+3228990210",))
JOHN = user(T1, "200", "John Doe", ("+3228990200",))
ALEX = user(T1, "202", "Alex Roe")  # a third user, to transfer calls to
OTHER = user(T2, "300", "Other Tenant")
TRUNK = Trunk(tenant_id=T1, name="carrier", host="127.0.0.1", port=5080)
DIRECTORY = Directory({
    T1: Tenant(id=T1, name="Example", sip_domain=None,
               users={"210": JANE, "200": JOHN, "202": ALEX}, trunks=(TRUNK,)),
    T2: Tenant(id=T2, name="Other", sip_domain="other.example", users={"300": OTHER}),
})
