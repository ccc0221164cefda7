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
    section: ServerSection = provisioning.server
    options = ServeOptions(
        http=http or section.http,
        sip=sip or section.sip,
        database=db or section.database,
        sip_trace=sip_trace,
    )
    if demo:
        _print_demo(provisioning, options.sip, options.http)
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


def main() -> None:  # pragma: no cover
    app()
