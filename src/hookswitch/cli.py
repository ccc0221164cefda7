"""The ``hookswitch`` command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.config import (
    ConfigError,
    Provisioning,
    ServerSection,
    WebhookSection,
    demo_integration,
    demo_tenant,
    load_provisioning,
)
from hookswitch.logs import configure_logging

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="hookswitch phone server")


@app.callback()
def _root() -> None:
    """hookswitch: a self-hosted phone server with the Call Control API v3."""


def _provisioning(
    config: Path | None, demo: bool, webhook: str | None = None, secret: str | None = None
) -> Provisioning:
    provisioning = load_provisioning(config) if config else Provisioning()
    if demo and not any(t.id == demo_tenant().id for t in provisioning.tenants):
        tenant = demo_tenant()
        if webhook:
            tenant = tenant.model_copy(
                update={"webhooks": [WebhookSection(url=webhook, secret=secret)]}
            )
        provisioning = provisioning.model_copy(
            update={"tenants": [*provisioning.tenants, tenant]}
        )
    if demo and not any(i.slug == demo_integration().slug for i in provisioning.integrations):
        provisioning = provisioning.model_copy(
            update={"integrations": [*provisioning.integrations, demo_integration()]})
    return provisioning


def _print_demo(provisioning: Provisioning, sip: str, http: str) -> None:
    tenant = demo_tenant()
    host = sip.rpartition(":")[0]
    typer.echo("hookswitch demo tenant (do not expose these credentials beyond this machine)")
    typer.echo(f"  tenant_id  {tenant.id}")
    typer.echo(f"  SIP server {sip} (UDP), domain {host}")
    for user in tenant.users:
        typer.echo(
            f"  {user.extension} {user.name:<9} SIP user {user.extension} "
            f"password {user.sip_password}  API token {user.api_token}"
        )
    typer.echo(f"  user portal http://{http}/portal/  log in as "
               + ", ".join(f"{u.extension} / {u.password}" for u in tenant.users))
    integration = demo_integration()
    typer.echo(f"  integration {integration.slug}: client_id {integration.client_id}, "
               f"client_secret {integration.client_secret} (examples/integrator/)")


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="TOML provisioning file")] = None,
    demo: Annotated[bool, typer.Option(help="provision the documented example tenant")] = False,
    http: Annotated[str | None, typer.Option(help="HTTP HOST:PORT")] = None,
    sip: Annotated[str | None, typer.Option(help="SIP UDP HOST:PORT")] = None,
    db: Annotated[str | None, typer.Option(help="database URL")] = None,
    sip_trace: Annotated[bool, typer.Option(help="log every SIP message")] = False,
    node_id: Annotated[
        str | None, typer.Option(help="this node's id in a cluster (docs/CLUSTER.md)")
    ] = None,
    edge: Annotated[
        str | None, typer.Option(help="the cluster's SIP edge proxy HOST:PORT (runs as a node)")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="with --demo: POST the demo users' call events here")
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="with --webhook: sign them with this whsec_ secret")
    ] = None,
) -> None:
    """Run the phone server (SIP and HTTP) until SIGTERM or Ctrl-C."""
    from hookswitch.server import ServeOptions, StartupRefused
    from hookswitch.server import serve as run_server

    configure_logging(sip_trace)
    if webhook and not demo:
        typer.echo("error: --webhook goes with --demo; use [[tenants.webhooks]] in a file",
                   err=True)
        raise typer.Exit(2)
    try:
        provisioning = _provisioning(config, demo, webhook, webhook_secret)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if node_id is not None or edge is not None:
        try:
            provisioning = provisioning.with_node(node_id, edge)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    section: ServerSection = provisioning.server
    options = ServeOptions(
        http=http or section.http,
        sip=sip or section.sip,
        database=db or section.database,
        sip_trace=sip_trace,
        node_id=section.node_id,
    )
    if demo:
        # A node's phones use the edge, never the node's own SIP address.
        _print_demo(provisioning, section.edge or options.sip, options.http)
    try:
        run_server(provisioning, options)
    except StartupRefused as exc:
        typer.echo(f"error: {exc}. Nothing was changed.", err=True)
        raise typer.Exit(1) from None


token_app = typer.Typer(no_args_is_help=True, help="API bearer tokens of users")
app.add_typer(token_app, name="token")

ConfigOption = Annotated[
    Path | None, typer.Option(help="TOML provisioning file (for its database)")
]
DbOption = Annotated[str | None, typer.Option(help="database URL (overrides the file)")]


def _database(config: Path | None, db: str | None) -> str:
    if db:
        return db
    try:
        return (load_provisioning(config) if config else Provisioning()).server.database
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _in_session(database: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from hookswitch.store.db import make_engine, migrate, session_factory

    async def run() -> T:
        engine = make_engine(database)
        try:
            await migrate(engine)
            async with session_factory(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option(help="tenant id")],
    extension: Annotated[str, typer.Option(help="the user's extension")],
    expires_in: Annotated[str | None, typer.Option(help="lifetime such as 30d, 12h, 15m")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Print a new bearer token for a user (shown once; only its hash is stored)."""
    from hookswitch.directory.tokens import TokenError, create_token, parse_duration

    try:
        lifetime = parse_duration(expires_in) if expires_in else None
        _, token = _in_session(
            _database(config, db), lambda s: create_token(s, tenant, extension, lifetime)
        )
    except TokenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="the token, or its id")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Revoke a token at once: requests with it get 401."""
    from hookswitch.directory.tokens import revoke_token

    if not _in_session(_database(config, db), lambda s: revoke_token(s, token)):
        typer.echo("error: no such active token", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


webhooks_app = typer.Typer(no_args_is_help=True, help="webhook deliveries (the outbox)")
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("log")
def webhooks_log(
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """List webhook deliveries: id, status, attempts, last error, url, event."""
    from hookswitch.events.admin import delivery_log

    rows = _in_session(_database(config, db), lambda s: delivery_log(s, status, limit))
    for row in rows:
        typer.echo(row)


@webhooks_app.command("replay")
def webhooks_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="delivery ids to send again")] = None,
    all_failed: Annotated[bool, typer.Option(help="every failed delivery")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Queue failed deliveries again; a running server sends them within a few seconds
    (its sender looks for them every 3 s)."""
    from hookswitch.events.admin import replay

    if not ids and not all_failed:
        typer.echo("error: give delivery ids or --all-failed", err=True)
        raise typer.Exit(2)
    count = _in_session(_database(config, db), lambda s: replay(s, ids or [], all_failed))
    typer.echo(f"{count} deliveries queued again")


integrations_app = typer.Typer(
    no_args_is_help=True, help="integrations: applications users connect by consent")
app.add_typer(integrations_app, name="integrations")


def _admin(database: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from hookswitch.integrations.admin import AdminError

    try:
        return _in_session(database, work)
    except AdminError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _headers(values: list[str] | None) -> dict[str, str]:
    headers = {}
    for value in values or []:
        name, separator, content = value.partition(":")
        if not separator or not name.strip():
            typer.echo(f"error: {value!r} is not a header such as 'X-Acme-Key: k1'", err=True)
            raise typer.Exit(2)
        headers[name.strip()] = content.strip()
    return headers


@integrations_app.command("create")
def integrations_create(
    slug: Annotated[str, typer.Option(help="its short name, in the portal's URLs")],
    name: Annotated[str, typer.Option(help="its name, shown to users")],
    activation_url: Annotated[str, typer.Option(help="where the user's tokens are POSTed")],
    deactivation_url: Annotated[str, typer.Option(help="where ends are announced")],
    redirect_url: Annotated[list[str], typer.Option(help="an allowed redirect_url prefix")],
    validation_header: Annotated[list[str] | None, typer.Option(
        help="'Name: value' sent on activation and deactivation calls")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="where its users' events go")] = None,
    webhook_header: Annotated[list[str] | None, typer.Option(
        help="'Name: value' sent with every event")] = None,
    webhook_secret: Annotated[str | None, typer.Option(help="whsec_... to sign events")] = None,
    logo: Annotated[str | None, typer.Option(help="an image file for the consent page")] = None,
    client_id: Annotated[str | None, typer.Option(help="default: the slug")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Register an integration; prints its client_id and client_secret (shown once)."""
    from pydantic import ValidationError

    from hookswitch.config import IntegrationSection
    from hookswitch.integrations.admin import create, new_client_secret

    secret = new_client_secret()
    try:
        section = IntegrationSection(
            slug=slug, name=name, client_id=client_id or slug, client_secret=secret,
            activation_url=activation_url, deactivation_url=deactivation_url,
            redirect_urls=redirect_url, validation_headers=_headers(validation_header),
            webhook_url=webhook_url, webhook_headers=_headers(webhook_header),
            webhook_secret=webhook_secret,
            logo=str(Path(logo).resolve()) if logo else None)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from exc
    _admin(_database(config, db), lambda s: create(s, section))
    typer.echo(f"client_id {section.client_id}")
    typer.echo(f"client_secret {secret}")


@integrations_app.command("list")
def integrations_list(config: ConfigOption = None, db: DbOption = None) -> None:
    """Every integration: slug, name, client_id, where it comes from, active users."""
    from hookswitch.integrations.admin import listing

    for line in _admin(_database(config, db), listing):
        typer.echo(line)


@integrations_app.command("rotate-secret")
def integrations_rotate_secret(
    slug: Annotated[str, typer.Argument(help="the integration's slug")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """A new client_secret (shown once); the old one stops working at once."""
    from hookswitch.integrations.admin import rotate_secret

    typer.echo(f"client_secret {_admin(_database(config, db), lambda s: rotate_secret(s, slug))}")


@integrations_app.command("deactivate")
def integrations_deactivate(
    slug: Annotated[str, typer.Argument(help="the integration's slug")],
    tenant: Annotated[str | None, typer.Option(help="with --extension: one user's")] = None,
    extension: Annotated[str | None, typer.Option(help="with --tenant: one user's")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """End activations (one user's, or all): tokens revoked, integrator told (admin)."""
    from hookswitch.integrations.admin import deactivate

    if (tenant is None) != (extension is None):
        typer.echo("error: give both --tenant and --extension, or neither (all users)",
                   err=True)
        raise typer.Exit(2)
    ended = _admin(_database(config, db), lambda s: deactivate(s, slug, tenant, extension))
    typer.echo(f"{ended} activation(s) ended")


def main() -> None:  # pragma: no cover
    app()
