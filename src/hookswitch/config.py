"""Settings and the TOML provisioning file (DESIGN.md, "Provisioning file").

The file is validated whole before anything is applied, so a typo is reported with its
place in the file and nothing half-applied is left behind.
"""

from __future__ import annotations

import re
import tomllib
import uuid
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
EXTENSION = re.compile(r"^[0-9]{2,8}$")

DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_SIP = "127.0.0.1:5060"
DEFAULT_DATABASE = "sqlite+aiosqlite:///var/hookswitch.db"
# A call-control body is under 1 KiB; 64 KiB leaves room and keeps reading one in full
# well under a millisecond of event-loop time.
DEFAULT_MAX_BODY_BYTES = 64 * 1024


class ConfigError(Exception):
    """The provisioning file cannot be used; the message says where and why."""

    code = "config-invalid"


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(_Strict):
    http: str = DEFAULT_HTTP
    sip: str = DEFAULT_SIP
    database: str = DEFAULT_DATABASE
    default_tenant: uuid.UUID | None = None
    ring_timeout: Annotated[float, Field(gt=0, le=600)] = 60.0
    # Digest algorithms offered in 401 challenges, in order ("MD5", "SHA-256").
    digest_algorithms: list[Literal["MD5", "SHA-256"]] = Field(default=["MD5"], min_length=1)
    # Call-control (issue 3) settings live here too; unknown keys are refused.
    click_to_dial_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    rate_limit: Annotated[int, Field(gt=0)] = 10  # call-control requests per second per user
    rate_limit_burst: Annotated[int, Field(gt=0)] = 20
    rate_limit_storage: str = "memory://"  # or "redis://127.0.0.1:6379" to share a budget
    # Request bodies over this many bytes are answered 413 before they are read. At most
    # 1 MiB: a body is parsed on the event loop, and every request shares that loop.
    max_body_bytes: Annotated[int, Field(gt=0, le=1024 * 1024)] = DEFAULT_MAX_BODY_BYTES
    # Webhook retries: first delay, doubling up to the max interval, parked after give-up.
    webhook_retry_first_interval: Annotated[float, Field(gt=0)] = 1.0
    webhook_retry_max_interval: Annotated[float, Field(gt=0)] = 600.0
    webhook_give_up_after: Annotated[float, Field(gt=0)] = 3600.0
    # Integrations: OAuth token lifetimes (seconds), the retry window of a refresh, how long
    # an integrator's Activation URL may take, and a portal login's lifetime.
    access_token_ttl: Annotated[int, Field(gt=0)] = 3600
    refresh_token_ttl: Annotated[int, Field(gt=0)] = 30 * 86400
    refresh_grace: Annotated[float, Field(ge=0, le=300)] = 10.0
    activation_timeout: Annotated[float, Field(gt=0, le=60)] = 10.0
    session_ttl: Annotated[int, Field(gt=0)] = 8 * 3600
    # Live event streams (GET /v3/events) one user may hold open at once; the next gets 429.
    max_streams_per_user: Annotated[int, Field(gt=0, le=1000)] = 10
    # A cluster (docs/CLUSTER.md): this node's id (unique among the nodes of one database),
    # the SIP edge proxy phones use (HOST:PORT; None on a single server), and the Redis
    # the nodes share (registry, heartbeats, the bus; rate limits when
    # ``rate_limit_storage`` is left in memory).
    node_id: Annotated[str, Field(min_length=1, max_length=64,
                                  pattern=r"^[A-Za-z0-9_.-]+$")] = "default"
    edge: str | None = None
    redis: str = "redis://127.0.0.1:6379"

    @property
    def clustered(self) -> bool:
        return self.edge is not None

    @field_validator("http", "sip", "edge")
    @classmethod
    def _hostport(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hostport(value, 0)
        return value


class UserSection(_Strict):
    extension: str
    name: str
    sip_password: Annotated[str, Field(min_length=4)]
    api_token: str | None = None
    numbers: list[str] = []
    auto_answer: bool = False
    # Web (user portal) password; not the SIP password. Stored as an argon2 hash only.
    password: Annotated[str, Field(min_length=8)] | None = None

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str) -> str:
        if not EXTENSION.match(value):
            raise ValueError("an extension is 2 to 8 digits")
        return value

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for number in value:
            if not E164.match(number):
                raise ValueError(f"{number!r} is not an E.164 number such as +3228990210")
        return value


class WebhookSection(_Strict):
    url: str
    secret: str | None = None
    headers: dict[str, str] = {}
    extensions: list[str] | None = None


class TrunkSection(_Strict):
    name: str
    address: str

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_hostport(value, 5060)
        return value

    @property
    def hostport(self) -> tuple[str, int]:
        return parse_hostport(self.address, 5060)


class TenantSection(_Strict):
    id: uuid.UUID
    name: str
    sip_domain: str | None = None
    users: list[UserSection] = []
    webhooks: list[WebhookSection] = []
    trunks: list[TrunkSection] = []

    @model_validator(mode="after")
    def _unique(self) -> TenantSection:
        extensions = [user.extension for user in self.users]
        duplicates = {ext for ext in extensions if extensions.count(ext) > 1}
        if duplicates:
            raise ValueError(f"extension(s) {sorted(duplicates)} appear more than once")
        names = [trunk.name for trunk in self.trunks]
        if len(set(names)) != len(names):
            raise ValueError("trunk names must be unique within a tenant")
        return self


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class IntegrationSection(_Strict):
    """A third-party application users may connect to (``[[integrations]]``)."""

    slug: str
    name: Annotated[str, Field(min_length=1, max_length=200)]
    client_id: Annotated[str, Field(min_length=1, max_length=100)]
    client_secret: Annotated[str, Field(min_length=8)]
    activation_url: str
    deactivation_url: str
    redirect_urls: Annotated[list[str], Field(min_length=1)]
    validation_headers: dict[str, str] = {}
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = {}
    webhook_secret: str | None = None
    logo: str | None = None  # a file name under the portal's static folder, or an https URL

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("a slug is 2 to 63 lower-case letters, digits and dashes")
        return value

    @field_validator("activation_url", "deactivation_url", "webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("redirect_urls")
    @classmethod
    def _redirects(cls, value: list[str]) -> list[str]:
        for url in value:
            cls._url(url)
        return value


class Provisioning(_Strict):
    server: ServerSection = ServerSection()
    tenants: list[TenantSection] = []
    integrations: list[IntegrationSection] = []

    @model_validator(mode="after")
    def _global_unique(self) -> Provisioning:
        ids = [str(t.id) for t in self.tenants]
        if len(set(ids)) != len(ids):
            raise ValueError("tenant ids must be unique")
        numbers = [n for t in self.tenants for u in t.users for n in u.numbers]
        if len(set(numbers)) != len(numbers):
            raise ValueError("an inbound number can ring only one user")
        domains = [t.sip_domain for t in self.tenants if t.sip_domain]
        if len(set(domains)) != len(domains):
            raise ValueError("sip_domain must be unique across tenants")
        if self.server.default_tenant and str(self.server.default_tenant) not in ids:
            raise ValueError("server.default_tenant names no tenant of this file")
        for key in ("slug", "client_id"):
            values = [getattr(i, key) for i in self.integrations]
            if len(set(values)) != len(values):
                raise ValueError(f"integration {key}s must be unique")
        return self

    def with_node(self, node_id: str | None, edge: str | None) -> Provisioning:
        """The same file run as a node of a cluster (``serve --node-id --edge``)."""
        server = self.server.model_dump()
        if node_id is not None:
            server["node_id"] = node_id
        if edge is not None:
            server["edge"] = edge
        try:
            section = ServerSection.model_validate(server)
        except ValidationError as exc:
            raise ConfigError("; ".join(f"{'.'.join(str(p) for p in err['loc'])}: "
                                        f"{err['msg']}" for err in exc.errors())) from exc
        return self.model_copy(update={"server": section})


def load_provisioning(path: Path) -> Provisioning:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        provisioning = Provisioning.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
    return provisioning.model_copy(update={"integrations": [
        _logo_beside(integration, path.parent) for integration in provisioning.integrations]})


def _logo_beside(integration: IntegrationSection, folder: Path) -> IntegrationSection:
    """A logo file named in the file is found beside it, wherever the server starts."""
    logo = integration.logo
    if logo is None or "://" in logo or Path(logo).is_absolute():
        return integration
    return integration.model_copy(update={"logo": str((folder / logo).resolve())})


DEMO_TENANT_ID = uuid.UUID("b11d749b-8eb7-4236-a068-3d94ba3860d6")


def demo_tenant() -> TenantSection:
    """The documented example tenant: 200 John Doe, 210 Jane Doe and 220 Bob Roe."""
    return TenantSection(
        id=DEMO_TENANT_ID,
        name="Example",
        users=[
            UserSection(
                extension="200",
                name="John Doe",
                sip_password="demo-200-pass",
                api_token="demo-token-200",
                numbers=["+3228990200"],
                password="demo-web-200",
            ),
            UserSection(
                extension="210",
                name="Jane Doe",
                sip_password="demo-210-pass",
                api_token="demo-token-210",
                numbers=["+3228990210"],
                password="demo-web-210",
            ),
            UserSection(  # a third phone, to transfer calls to
                extension="220",
                name="Bob Roe",
                sip_password="demo-220-pass",
                api_token="demo-token-220",
                password="demo-web-220",
            ),
        ],
    )


def demo_integration() -> IntegrationSection:
    """The example integrator of the README (examples/integrator/), as DESIGN.md names it."""
    return IntegrationSection(
        slug="acme-crm",
        name="Acme CRM",
        client_id="acme-crm",
        client_secret="acme-secret",
        activation_url="http://127.0.0.1:9100/telephony/activate",
        deactivation_url="http://127.0.0.1:9100/telephony/deactivate",
        redirect_urls=["http://127.0.0.1:9100/"],
        validation_headers={"X-Acme-Key": "k1"},
        webhook_url="http://127.0.0.1:9100/telephony/events",
        webhook_headers={"X-Acme-Key": "k1"},
        webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        logo=str(Path(__file__).parent / "web" / "static" / "acme-crm.svg"),
    )
