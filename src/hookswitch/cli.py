"""The ``hookswitch`` command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer

from hookswitch.config import (
    ConfigError,
    Provisioning,
    ServerSection,
    demo_tenant,
    load_provisioning,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="hookswitch phone server")


@app.callback()
def _root() -> None:
    """hookswitch: a self-hosted phone server with the Call Control API v3."""


def _configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def _provisioning(config: Path | None, demo: bool) -> Provisioning:
    provisioning = load_provisioning(config) if config else Provisioning()
    if demo and not any(t.id == demo_tenant().id for t in provisioning.tenants):
        provisioning = provisioning.model_copy(
            update={"tenants": [*provisioning.tenants, demo_tenant()]}
        )
    return provisioning


def _print_demo(provisioning: Provisioning, sip: str) -> None:
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


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="TOML provisioning file")] = None,
    demo: Annotated[bool, typer.Option(help="provision the documented example tenant")] = False,
    http: Annotated[str | None, typer.Option(help="HTTP HOST:PORT")] = None,
    sip: Annotated[str | None, typer.Option(help="SIP UDP HOST:PORT")] = None,
    db: Annotated[str | None, typer.Option(help="database URL")] = None,
    sip_trace: Annotated[bool, typer.Option(help="log every SIP message")] = False,
) -> None:
    """Run the phone server (SIP and HTTP) until SIGTERM or Ctrl-C."""
    from hookswitch.server import ServeOptions
    from hookswitch.server import serve as run_server

    _configure_logging(sip_trace)
    try:
        provisioning = _provisioning(config, demo)
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
        _print_demo(provisioning, options.sip)
    run_server(provisioning, options)


def main() -> None:  # pragma: no cover
    app()
