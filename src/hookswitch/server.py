"""Builds every part and connects them: store, directory, SIP gateway, call domain, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import structlog
import uvicorn

from hookswitch.api.app import Services, create_app
from hookswitch.api.idempotency import IdempotencyStore
from hookswitch.api.ratelimit import RateLimiter
from hookswitch.calls.commands import CallEnded, Command, Signal
from hookswitch.calls.control import CallControl
from hookswitch.calls.ids import new_call_id, new_leg_id
from hookswitch.calls.leg import LegChange
from hookswitch.calls.switch import Effect, LegOpened, Switch, SwitchSettings
from hookswitch.clock import now_us
from hookswitch.config import Provisioning, parse_hostport
from hookswitch.directory.provisioning import apply_provisioning, load_directory
from hookswitch.events.outbox import Subscriptions
from hookswitch.events.sender import RetryPolicy
from hookswitch.events.stream import Broadcaster
from hookswitch.events.worker import EventsWorker
from hookswitch.heap import settle_after_startup
from hookswitch.sip.location import Binding, Location
from hookswitch.sip.thread import SipThread
from hookswitch.store.db import make_engine, migrate, session_factory
from hookswitch.store.queries import stored_leg
from hookswitch.store.recorder import BindingChange, close_open_legs, load_bindings

log = structlog.get_logger("hookswitch.server")


@dataclass(frozen=True)
class ServeOptions:
    http: str
    sip: str
    database: str
    sip_trace: bool = False


class Server:
    def __init__(self, provisioning: Provisioning, options: ServeOptions) -> None:
        self.provisioning = provisioning
        self.options = options
        self.ready = False
        self.location = Location()

    async def run(self) -> None:
        engine = make_engine(self.options.database)
        await migrate(engine)
        sessions = session_factory(engine)
        settings = self.provisioning.server
        async with sessions.begin() as session:
            await apply_provisioning(session, self.provisioning)
        async with sessions() as session:
            subscriptions = await Subscriptions.load(session)
        async with sessions.begin() as session:
            closed = await close_open_legs(session, now_us(), subscriptions)
            directory = await load_directory(
                session, str(settings.default_tenant) if settings.default_tenant else None
            )
            for binding in await load_bindings(session):
                self.location.put(binding)
        if closed:
            log.warning("legs.closed_after_crash", count=closed)

        loop = asyncio.get_running_loop()
        # sippy must be imported first in its own thread (see sip/thread.py), so the
        # gateway module is imported only once that thread exists.
        sip_thread = SipThread()
        from hookswitch.sip.gateway import SipGateway

        self.broadcaster = Broadcaster(sessions)
        # The leg recorder and the webhook sender run in a process of their own
        # (events/worker.py): this one keeps its GIL for SIP, the switch and the API.
        self.events = EventsWorker(
            self.options.database,
            RetryPolicy(settings.webhook_retry_first_interval,
                        settings.webhook_retry_max_interval, settings.webhook_give_up_after),
            self.broadcaster.publish,
        )
        await self.events.start()  # it first loads what a crash or a stop left in the outbox
        self.gateway = SipGateway(
            parse_hostport(self.options.sip, 5060),
            directory,
            self.location,
            emit=lambda sig: loop.call_soon_threadsafe(self.on_signal, sig),
            on_binding=lambda *change: loop.call_soon_threadsafe(self.on_binding, *change),
            trace=self.options.sip_trace,
            digest_algorithms=tuple(settings.digest_algorithms),
        )
        self.switch = Switch(
            directory,
            self.gateway.has_devices,
            new_leg_id,
            SwitchSettings(ring_timeout=settings.ring_timeout,
                           click_to_dial_timeout=settings.click_to_dial_timeout),
        )
        self.sessions = sessions
        self.call_control = CallControl(
            self.switch, self.apply, partial(stored_leg, sessions), now_us, new_call_id
        )
        settle_after_startup()
        self.gateway.start(sip_thread)
        http_host, http_port = parse_hostport(self.options.http, 8080)
        app = create_app(
            Services(
                sessions=sessions,
                call_control=self.call_control,
                rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_burst,
                                         settings.rate_limit_storage),
                idempotency=IdempotencyStore(sessions),
                is_ready=lambda: self.ready and self.gateway.threads_alive(),
                broadcaster=self.broadcaster,
            )
        )
        config = uvicorn.Config(app, host=http_host, port=http_port, log_level="warning",
                                lifespan="off",
                                # open event streams must not hold the shutdown back
                                timeout_graceful_shutdown=2)
        http = _HttpServer(config)
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Both end the server the same way: HTTP stops, then live calls get BYE.
            loop.add_signal_handler(signum, http.request_exit)

        async def mark_ready() -> None:
            while not http.started:
                await asyncio.sleep(0.01)
            self.ready = True
            log.info("server.ready", http=self.options.http, sip=self.options.sip)

        readiness = asyncio.create_task(mark_ready())
        try:
            await http.serve()
        finally:
            readiness.cancel()
            self.ready = False
            # The CallEnded signals of the calls that stop() ends were scheduled on this
            # loop before stop() returned, so they have run (FIFO) when this await resumes.
            await loop.run_in_executor(None, self.gateway.stop)
            await self.events.stop()  # writes every record; undelivered events stay queued
            await engine.dispose()
            log.info("server.stopped")

    def on_signal(self, sig: Signal) -> None:
        try:
            effects = self.switch.handle(sig)
        except Exception:
            log.exception("calls.signal_failed", signal=type(sig).__name__)
            return
        self.apply(effects)
        if isinstance(sig, CallEnded):
            self.call_control.call_ended(sig.call_id)

    def apply(self, effects: list[Effect]) -> None:
        """Commands go to SIP at once; leg records go to the one writer, in order."""
        for effect in effects:
            if isinstance(effect, LegOpened | LegChange):
                self.events.put(effect)
            else:
                self.submit(effect)

    def submit(self, command: Command) -> None:
        self.gateway.submit(command)

    def on_binding(self, user_id: str, binding: Binding | None, contact: str | None) -> None:
        self.events.put(BindingChange(user_id, binding, contact))


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the server decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True


def serve(provisioning: Provisioning, options: ServeOptions) -> None:
    # The SIP thread, the event loop and the database driver's thread hand work to each
    # other on every call; with the default 5 ms GIL switch interval each hand-off can wait
    # that long. 0.5 ms keeps call setup in single-digit milliseconds.
    sys.setswitchinterval(0.0005)
    asyncio.run(Server(provisioning, options).run())
