"""An immutable picture of the directory, read by the SIP thread and the call domain.

The provisioning file is the source of truth and changes only at start-up, so SIP requests
are authenticated and routed from memory: no database round trip on the call path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hookswitch.calls.ids import TenantId, UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    id: UserId
    tenant_id: TenantId
    extension: str
    name: str
    ha1_md5: str
    ha1_sha256: str
    numbers: tuple[str, ...] = ()
    auto_answer: bool = False

    @property
    def presented_number(self) -> str:
        """What an outside party sees as the caller: the first DID, else the extension."""
        return self.numbers[0] if self.numbers else self.extension


@dataclass(frozen=True, slots=True, kw_only=True)
class Trunk:
    tenant_id: TenantId
    name: str
    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: TenantId
    name: str
    sip_domain: str | None
    users: dict[str, User] = field(default_factory=dict)  # by extension
    trunks: tuple[Trunk, ...] = ()

    def user_by_number(self, number: str) -> User | None:
        return next((u for u in self.users.values() if number in u.numbers), None)

    @property
    def realm(self) -> str:
        """Digest realm: the tenant's SIP domain, else its id (stable, so HA1 stays valid)."""
        return self.sip_domain or str(self.id)


@dataclass(frozen=True, slots=True)
class Directory:
    tenants: dict[TenantId, Tenant]
    default_tenant: TenantId | None = None
    _by_domain: dict[str, Tenant] = field(default_factory=dict, repr=False)
    _users: dict[UserId, User] = field(default_factory=dict, repr=False)
    _by_source: dict[tuple[str, int], Trunk] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for tenant in self.tenants.values():
            if tenant.sip_domain:
                self._by_domain[tenant.sip_domain.lower()] = tenant
            for trunk in tenant.trunks:
                self._by_source.setdefault((trunk.host, trunk.port), trunk)
            for user in tenant.users.values():
                self._users[user.id] = user

    def tenant_for_domain(self, domain: str) -> Tenant | None:
        """The tenant a SIP request belongs to, from the domain of its From/To URI."""
        tenant = self._by_domain.get(domain.lower())
        if tenant is not None:
            return tenant
        if self.default_tenant is not None:
            return self.tenants.get(self.default_tenant)
        if len(self.tenants) == 1:
            return next(iter(self.tenants.values()))
        return None

    def user(self, user_id: UserId) -> User | None:
        return self._users.get(user_id)

    def trunk_for_source(self, host: str, port: int) -> Trunk | None:
        """The trunk a request came from, by exact source address. Matching the host alone
        would let any phone on the carrier's host pass as the carrier, unauthenticated."""
        return self._by_source.get((host, port))
