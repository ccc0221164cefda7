"""The example integrator's settings: a command-line flag wins over an environment variable,
which wins over the demo's value. The demo values are those of the integration that
``make run`` provisions (DESIGN.md's example), so both start with no option at all."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEMO_CLIENT_SECRET = "acme-secret"
# The demo integration's webhook secret (what `make run` provisions): events are verified.
DEMO_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def demo_headers() -> dict[str, str]:
    return {"X-Acme-Key": "k1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    hookswitch_url: str = "http://127.0.0.1:8080"
    listen: str = "127.0.0.1:9100"
    # Where browsers reach this app; hookswitch sends them back here after the consent.
    # Empty: http://{listen}/ (right unless a proxy sits in front).
    public_url: str = ""
    slug: str = "acme-crm"
    client_id: str = "acme-crm"
    client_secret: str = field(default=DEMO_CLIENT_SECRET, repr=False)
    # Headers hookswitch sends on the activation and deactivation calls: whoever cannot
    # show them is not hookswitch.
    validation_headers: Mapping[str, str] = field(default_factory=demo_headers, repr=False)
    # Headers it sends with each event; None means the same as validation_headers.
    webhook_headers: Mapping[str, str] | None = field(default=None, repr=False)
    # The integration's whsec_... secret: events are then checked against their signature.
    webhook_secret: str | None = field(default=None, repr=False)
    # Refresh the access token when fewer seconds than this remain.
    refresh_margin: float = 60.0
    # Events kept per user for the page.
    events_kept: int = 20

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def home_url(self) -> str:
        """This app's ``/`` as the browser sees it: the ``redirect_url`` given to hookswitch."""
        return self.public_url or f"http://{self.listen}/"

    @property
    def expected_webhook_headers(self) -> Mapping[str, str]:
        if self.webhook_headers is None:
            return self.validation_headers
        return self.webhook_headers


def parse_header(text: str) -> tuple[str, str]:
    """``"X-Acme-Key: k1"`` -> ``("X-Acme-Key", "k1")``."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def parse_headers(lines: Sequence[str]) -> dict[str, str]:
    return dict(parse_header(line) for line in lines if line.strip())


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_settings(argv: Sequence[str] | None, environment: Mapping[str, str]) -> Settings:
    """Settings from flags, else ``INTEGRATOR_*`` variables (headers: one ``Name: value``
    per line), else the demo's values. Refuses the demo's client secret off loopback."""
    demo = Settings()

    def env(name: str, default: str) -> str:
        return environment.get(f"INTEGRATOR_{name}", default)

    parser = argparse.ArgumentParser(
        prog="python -m examples.integrator",
        description="The example integrator of hookswitch (a CRM's telephony side).")
    parser.add_argument("--hookswitch", default=env("HOOKSWITCH_URL", demo.hookswitch_url),
                        help="hookswitch's base URL (INTEGRATOR_HOOKSWITCH_URL)")
    parser.add_argument("--listen", default=env("LISTEN", demo.listen),
                        help="HOST:PORT to serve on (INTEGRATOR_LISTEN)")
    parser.add_argument("--public-url", default=env("PUBLIC_URL", ""),
                        help="this app's / as browsers reach it (INTEGRATOR_PUBLIC_URL)")
    parser.add_argument("--slug", default=env("SLUG", demo.slug),
                        help="the integration's slug (INTEGRATOR_SLUG)")
    parser.add_argument("--client-id", default=env("CLIENT_ID", demo.client_id),
                        help="OAuth client id (INTEGRATOR_CLIENT_ID)")
    parser.add_argument("--client-secret", default=env("CLIENT_SECRET", demo.client_secret),
                        help="OAuth client secret; prefer INTEGRATOR_CLIENT_SECRET, which "
                             "other users of the machine cannot read in the process list")
    parser.add_argument("--validation-header", action="append", type=parse_header,
                        metavar="'NAME: VALUE'",
                        help="expected on activation and deactivation calls, repeatable "
                             "(INTEGRATOR_VALIDATION_HEADERS; default 'X-Acme-Key: k1')")
    parser.add_argument("--webhook-header", action="append", type=parse_header,
                        metavar="'NAME: VALUE'",
                        help="expected on events, repeatable (INTEGRATOR_WEBHOOK_HEADERS; "
                             "default: the validation headers)")
    parser.add_argument("--webhook-secret", default=env("WEBHOOK_SECRET", DEMO_WEBHOOK_SECRET),
                        help="whsec_... to verify event signatures (INTEGRATOR_WEBHOOK_SECRET)")
    arguments = parser.parse_args(argv)

    validation = (dict(arguments.validation_header) if arguments.validation_header
                  else parse_headers(env("VALIDATION_HEADERS", "").splitlines())
                  or dict(demo.validation_headers))
    webhook = (dict(arguments.webhook_header) if arguments.webhook_header
               else parse_headers(env("WEBHOOK_HEADERS", "").splitlines()) or None)
    settings = Settings(
        hookswitch_url=arguments.hookswitch.rstrip("/"),
        listen=arguments.listen,
        public_url=arguments.public_url,
        slug=arguments.slug,
        client_id=arguments.client_id,
        client_secret=arguments.client_secret,
        validation_headers=validation,
        webhook_headers=webhook,
        webhook_secret=arguments.webhook_secret or None,
    )
    if settings.client_secret == DEMO_CLIENT_SECRET and not _is_loopback(settings.host):
        parser.error("the demo client secret is for loopback only: set INTEGRATOR_CLIENT_SECRET")
    return settings
