"""Builds every part and connects them: store, directory, SIP gateway, call domain, HTTP.

Start-up order matters: first everything that another server could hold (the HTTP port,
the SIP port, the database lock), then the data (migrations, provisioning, what a crash
left behind), then serving. A second ``hookswitch serve`` on the same ports or database
stops at the first step with a clear message and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hookswitch import metrics
from hookswitch.api.app import HttpApp, create_app
from hookswitch.api.forward import Forwarder
from hookswitch.api.idempotency import IdempotencyStore
from hookswitch.api.ratelimit import LoginThrottle, RateLimiter
from hookswitch.api.schemas import HealthStatus
from hookswitch.api.services import Services
from hookswitch.calls.commands import CallEnded, CallOffered, Command, RingUser, Signal
from hookswitch.calls.control import CallControl
from hookswitch.calls.dialogs import Dialog, DialogRecord
from hookswitch.calls.directory import Directory
from hookswitch.calls.ids import CallId, LegId, UserId, new_call_id, new_leg_id
from hookswitch.calls.leg import LegChange
from hookswitch.calls.listing import CallListing
from hookswitch.calls.registrations import Binding
from hookswitch.calls.switch import Effect, LegOpened, Switch, SwitchSettings
from hookswitch.clock import now_us
from hookswitch.cluster.claims import Claims
from hookswitch.cluster.membership import NodeInfo
from hookswitch.cluster.node import ClusterNode, RedisUnavailable
from hookswitch.config import Provisioning, ServerSection, parse_hostport
from hookswitch.directory.provisioning import apply_provisioning, load_directory
from hookswitch.directory.tokens import live_tokens
from hookswitch.events.outbox import OutboxEvent, Subscriptions
from hookswitch.events.provisioning import apply_webhooks
from hookswitch.events.recorder import BindingChange, Recorder
from hookswitch.events.sender import RetryPolicy
from hookswitch.events.stream import Broadcaster
from hookswitch.events.takeover import TakenOver, TakeOver
from hookswitch.events.worker import EventsWorker, WorkerUnavailable
from hookswitch.heap import settle_after_startup
from hookswitch.integrations.provisioning import apply_integrations, end_removed
from hookswitch.integrations.service import Integrations
from hookswitch.sip.location import Location
from hookswitch.sip.thread import SipThread
from hookswitch.store.db import make_engine, migrate, session_factory
from hookswitch.store.dialogs import take_orphaned_dialogs
from hookswitch.store.history import ended_legs
from hookswitch.store.lock import DEFAULT_NODE, DatabaseInUse, DatabaseLock, one_at_a_time
from hookswitch.store.queries import leg_holder, live_legs_on, stored_leg
from hookswitch.store.registrations import load_bindings
from hookswitch.store.writes import Writer
from hookswitch.web.app import install as install_portal

if TYPE_CHECKING:
    from hookswitch.sip.gateway import SipGateway

log = structlog.get_logger("hookswitch.server")

HTTP_BACKLOG = 2048


@dataclass(frozen=True)
class ServeOptions:
    http: str
    sip: str
    database: str
    sip_trace: bool = False
    node_id: str = DEFAULT_NODE


class StartupRefused(Exception):
    """Something this server needs is held by another process; nothing was changed."""


@dataclass(frozen=True)
class _Recovered:
    """What the database says at start: the directory, and what a crash left open."""

    directory: Directory
    bindings: list[Binding]
    orphaned_dialogs: list[Dialog]
    closed_legs: int


@dataclass(frozen=True)
class Core:
    """What serves calls and requests, wired; the same for the server and the tests."""

    switch: Switch
    call_control: CallControl
    broadcaster: Broadcaster
    app: HttpApp
    forwarder: Forwarder | None = None  # its HTTP client is closed when the server stops


def build(
    settings: ServerSection,
    directory: Directory,
    sessions: async_sessionmaker[AsyncSession],
    *,
    has_devices: Callable[[UserId], bool],
    carry_out: Callable[[list[Effect]], None],
    writer: Writer,
    health: Callable[[], HealthStatus],
    registered_devices: Callable[[], int] = lambda: 0,
    worker_metrics: Callable[[], str] = lambda: "",
    devices: Callable[[UserId], list[Binding]] = lambda _user_id: [],
    new_leg_id: Callable[[], LegId] = new_leg_id,
    new_call_id: Callable[[], CallId] = new_call_id,
    clock: Callable[[], int] = now_us,
    shared_namespace: str = "",
    cluster: ClusterNode | None = None,
) -> Core:
    """Pure wiring: the switch, the call-control service and the HTTP app, around what the
    caller gives (the SIP side's registrations and commands, the one writer; or fakes).
    With ``cluster``, any node answers for any leg: commands go to the node holding it,
    the live calls list every node's, and an Idempotency-Key is claimed cluster-wide."""

    async def tokens_alive(token_ids: set[str]) -> set[str]:
        async with sessions() as session:
            return await live_tokens(session, token_ids)

    switch = Switch(directory, has_devices, new_leg_id,
                    SwitchSettings(ring_timeout=settings.ring_timeout,
                                   click_to_dial_timeout=settings.click_to_dial_timeout))
    call_control = CallControl(switch, carry_out, partial(stored_leg, sessions), clock,
                               new_call_id)
    broadcaster = Broadcaster(sessions, settings.max_streams_per_user, tokens_alive)
    forwarder, elsewhere, claims = None, None, None
    if cluster is not None:
        membership = cluster.membership
        forwarder = Forwarder(membership, partial(leg_holder, sessions))
        elsewhere = partial(live_legs_on, sessions,
                            lambda: {membership.me.node_id, *membership.dead()})
        claims = Claims(cluster.redis, cluster.prefix)
    metrics.show_live({
        "hookswitch_live_legs": ("Users' call legs that have not ended",
                                 switch.live_leg_count),
        "hookswitch_registered_devices": ("Phones registered now, of every user",
                                          registered_devices),
    })
    app = create_app(
        Services(
            sessions=sessions,
            call_control=call_control,
            call_listing=CallListing(switch, partial(ended_legs, sessions), elsewhere),
            rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_burst,
                                     settings.rate_limit_storage, shared_namespace),
            idempotency=IdempotencyStore(sessions, writer, claims),
            health=health,
            broadcaster=broadcaster,
            integrations=Integrations(sessions, writer, settings),
            writer=writer,
            login_throttle=LoginThrottle(settings.rate_limit_storage, shared_namespace),
            session_ttl=timedelta(seconds=settings.session_ttl),
            metrics=lambda: metrics.exposition(worker_metrics()),
            devices=devices,
            forwarder=forwarder,
        ),
        max_body_bytes=settings.max_body_bytes,
    )
    install_portal(app)
    return Core(switch, call_control, broadcaster, app, forwarder)


class Server:
    def __init__(self, provisioning: Provisioning, options: ServeOptions) -> None:
        self.provisioning = provisioning
        self.options = options
        self.ready = False
        self._stopping = False
        self.location = Location()
        self.cluster: ClusterNode | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        http_socket = bind_http(self.options.http)
        try:
            gateway = self._bind_sip()
        except BaseException:
            http_socket.close()
            raise
        engine = make_engine(self.options.database)
        lock = DatabaseLock(engine, self.options.database, self.options.node_id)
        try:
            try:
                await lock.acquire()
            except DatabaseInUse as exc:
                raise StartupRefused(str(exc)) from None
            settings = self.provisioning.server
            if settings.clustered:
                self.cluster = ClusterNode(
                    settings.redis, self.options.database,
                    NodeInfo(settings.node_id, self.options.http, self.options.sip),
                    on_dead=self.take_over, on_binding=self.on_remote_binding,
                    on_events=self.on_remote_events, on_gap=self.on_bus_gap)
                try:
                    await self.cluster.connect()
                except RedisUnavailable as exc:
                    raise StartupRefused(str(exc)) from None
            recovered = await self._prepare_database(engine)
            self.engine = engine
            await self._serve(engine, gateway, recovered, http_socket)
        finally:
            http_socket.close()
            await asyncio.get_running_loop().run_in_executor(None, gateway.stop)
            await lock.release()
            await engine.dispose()

    # --- start-up ------------------------------------------------------------------------

    def _bind_sip(self) -> SipGateway:
        loop = asyncio.get_running_loop()
        # sippy must be imported first in its own thread (see sip/thread.py), so the
        # gateway module is imported only once that thread exists.
        sip_thread = SipThread()
        from hookswitch.sip.gateway import SipGateway

        settings = self.provisioning.server
        gateway = SipGateway(
            parse_hostport(self.options.sip, 5060),
            self.location,
            emit=lambda sig: loop.call_soon_threadsafe(self.on_signal, sig),
            on_binding=lambda *change: loop.call_soon_threadsafe(self.on_binding, *change),
            on_dialogs=lambda record: loop.call_soon_threadsafe(self.on_dialogs, record),
            trace=self.options.sip_trace,
            digest_algorithms=tuple(settings.digest_algorithms),
            edge=parse_hostport(settings.edge, 5060) if settings.edge is not None else None,
        )
        try:
            gateway.bind(sip_thread)
        except OSError as exc:
            raise StartupRefused(
                f"cannot listen for SIP on {self.options.sip} (UDP): {exc.strerror or exc} "
                "(is another hookswitch or SIP server running there?)"
            ) from None
        return gateway

    async def _prepare_database(self, engine: AsyncEngine) -> _Recovered:
        """Migrations, provisioning, and what a crash left: open legs end ``failed``, and
        the dialogs of answered calls are handed over to be ended with BYE."""
        sessions = session_factory(engine)
        settings = self.provisioning.server
        # The nodes of a cluster start together: one migrates and provisions at a time.
        async with one_at_a_time(engine, "prepare"):
            await migrate(engine)
            async with sessions.begin() as session:
                await apply_file(session, self.provisioning)
        async with sessions() as session:
            subscriptions = await Subscriptions.load(session)
        async with sessions.begin() as session:
            # Its events and deliveries need no sending from here: the worker loads the
            # outbox when it starts.
            closed, _, _ = await Recorder(sessions, subscriptions,
                                          node_id=self.options.node_id
                                          ).end_open_legs(session, now_us())
            orphaned = await take_orphaned_dialogs(session, self.options.node_id)
            directory = await load_directory(
                session, str(settings.default_tenant) if settings.default_tenant else None
            )
            bindings = await load_bindings(session)
        if closed:
            log.warning("legs.closed_after_crash", count=closed)
        return _Recovered(directory, bindings, orphaned, closed)

    async def _serve(
        self,
        engine: AsyncEngine,
        gateway: SipGateway,
        recovered: _Recovered,
        http_socket: socket.socket,
    ) -> None:
        loop = asyncio.get_running_loop()
        settings = self.provisioning.server
        sessions = session_factory(engine)
        for binding in recovered.bindings:
            self.location.put(binding)
        self.gateway = gateway
        # The leg recorder and the webhook sender run in a process of their own
        # (events/worker.py): this one keeps its GIL for SIP, the switch and the API.
        self.events = EventsWorker(
            self.options.database,
            RetryPolicy(settings.webhook_retry_first_interval,
                        settings.webhook_retry_max_interval, settings.webhook_give_up_after),
            self.on_events,
            node_id=self.options.node_id,
        )
        if self.cluster is not None and settings.rate_limit_storage == "memory://":
            # One budget per user across the nodes: a client cannot double it by switching.
            settings = settings.model_copy(update={"rate_limit_storage": settings.redis})
        core = build(settings, recovered.directory, sessions,
                     has_devices=gateway.has_devices, carry_out=self.carry_out,
                     devices=self.location.devices, writer=self.events,
                     health=partial(self.health, gateway),
                     registered_devices=self.location.device_count,
                     worker_metrics=lambda: self.events.metrics_text,
                     shared_namespace=self.cluster.prefix if self.cluster else "",
                     cluster=self.cluster)
        self.switch, self.call_control, self.broadcaster = (
            core.switch, core.call_control, core.broadcaster)
        await self.events.start()  # it first loads what a crash or a stop left in the outbox
        if self.cluster is not None:
            await self.cluster.start()
        settle_after_startup()
        gateway.open(recovered.directory, recovered.orphaned_dialogs)
        http = _HttpServer(
            uvicorn.Config(core.app, log_level="warning", lifespan="off",
                           # open event streams are closed first; this bounds the rest
                           timeout_graceful_shutdown=2),
            on_started=self._on_http_started,
        )

        def stop() -> None:
            # Both end the server the same way: event streams end, HTTP stops, then live
            # calls get BYE. Streams first, or uvicorn waits for them and cancels them.
            self.ready = False
            self._stopping = True
            self.broadcaster.close_all()
            http.request_exit()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        try:
            await http.serve(sockets=[http_socket])
        finally:
            self.ready = False
            # The CallEnded signals of the calls that stop() ends were scheduled on this
            # loop before stop() returned, so they have run (FIFO) when this await resumes.
            await loop.run_in_executor(None, gateway.stop)
            await self.events.stop()  # writes every record; undelivered events stay queued
            if core.forwarder is not None:
                await core.forwarder.aclose()
            if self.cluster is not None:
                await self.cluster.stop()  # after its calls ended: nothing to take over
            log.info("server.stopped")

    def health(self, gateway: SipGateway) -> HealthStatus:
        if not gateway.threads_alive():
            return "sip-down"
        if not self.ready:
            return "stopping" if self._stopping else "starting"
        return "ok"

    def _on_http_started(self) -> None:
        self.ready = True
        log.info("server.ready", http=self.options.http, sip=self.options.sip)

    # --- what crosses from the SIP thread (each runs on the loop) -------------------------

    def on_signal(self, sig: Signal) -> None:
        match sig:
            case CallOffered():
                metrics.CALLS_STARTED.labels("incoming").inc()
            case CallEnded(reason=reason):
                metrics.CALLS_ENDED.labels(reason.value).inc()
        try:
            effects = self.switch.handle(sig)
        except Exception:
            log.exception("calls.signal_failed", signal=type(sig).__name__)
            return
        self.carry_out(effects)
        self.call_control.calls_changed()

    def carry_out(self, effects: list[Effect]) -> None:
        """Commands go to SIP at once; leg records go to the one writer, in order."""
        for effect in effects:
            if isinstance(effect, LegOpened | LegChange):
                self.events.put(effect)
            else:
                if isinstance(effect, RingUser):
                    metrics.CALLS_STARTED.labels("click-to-dial").inc()
                self.submit(effect)

    def submit(self, command: Command) -> None:
        self.gateway.submit(command)

    def on_binding(self, user_id: str, binding: Binding | None, contact: str | None) -> None:
        self.events.put(BindingChange(user_id, binding, contact))
        if self.cluster is not None:
            self.cluster.binding_changed(user_id, binding, contact)

    def on_events(self, events: list[OutboxEvent]) -> None:
        """Call events the worker committed: to this node's live streams, and in a cluster
        to the other nodes' (a user's stream may be open on any node)."""
        self.broadcaster.publish(events)
        if self.cluster is not None:
            self.cluster.events_committed([asdict(event) for event in events
                                           if event.kind == "call"])

    # --- what crosses from the other nodes (each runs on the loop) -------------------------

    def on_remote_binding(self, user_id: UserId, binding: Binding | None,
                          contact: str | None) -> None:
        """A phone registered (or left) through another node: this node rings it too."""
        if binding is not None:
            self.location.put(binding)
        else:
            self.location.remove(user_id, contact)

    def on_remote_events(self, events: list[dict[str, Any]]) -> None:
        self.broadcaster.publish([OutboxEvent(**fields) for fields in events])

    def on_bus_gap(self) -> None:
        """Back on the bus after Redis was away: what was missed is in the database."""
        self.broadcaster.end_all()
        task = asyncio.get_running_loop().create_task(self._reload_bindings())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_bindings(self) -> None:
        async with session_factory(self.engine)() as session:
            bindings = await load_bindings(session)
        for binding in bindings:
            self.location.put(binding)

    async def take_over(self, node_id: str) -> bool:
        """A dead node's calls and deliveries (events/takeover.py): its open legs end
        ``failed`` (HANGUP events sent from here), its pending deliveries become this
        node's, and both sides of its answered calls get BYE from here. False while the
        database says it still lives (its lock is held): membership asks again next beat."""
        try:
            taken = await self.events.call(TakeOver(node_id, self.options.node_id, now_us()))
        except WorkerUnavailable as exc:
            log.warning("cluster.take_over_failed", node=node_id, error=str(exc))
            return False
        if not isinstance(taken, TakenOver):
            log.info("cluster.take_over_later", node=node_id, why="its lock is held")
            return False
        if taken.dialogs:
            self.gateway.end_dialogs(taken.dialogs)
        log.warning("cluster.took_over", node=node_id, legs=taken.legs,
                    dialogs=len(taken.dialogs), deliveries=taken.moved)
        return True

    def on_dialogs(self, record: DialogRecord) -> None:
        self.events.put(record)


async def apply_file(session: AsyncSession, provisioning: Provisioning) -> None:
    """The provisioning file, every room's part of it, in one transaction. Activations
    that its removals end are ended (and announced) before the users go."""
    await end_removed(session, provisioning)
    await apply_provisioning(session, provisioning)
    await apply_webhooks(session, provisioning)
    await apply_integrations(session, provisioning)


def bind_http(address: str) -> socket.socket:
    """The listening socket for uvicorn, bound before anything else happens."""
    host, port = parse_hostport(address, 8080)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said out loud: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket's proto is IPPROTO_TCP, and a socket made with proto 0 is
    # not. Without it, Nagle held a response's body until the client's delayed ACK of its
    # headers: 40 ms on every HTTP answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # For TCP, SO_REUSEADDR only allows binding over connections in TIME_WAIT (a quick
    # restart), never over a listening socket: a second server still fails here.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(HTTP_BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartupRefused(
            f"cannot listen for HTTP on {address}: {exc.strerror or exc} "
            "(is another hookswitch running there?)"
        ) from None
    sock.setblocking(False)
    return sock


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling (the server decides how to stop), telling
    when it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()

    def request_exit(self) -> None:
        self.should_exit = True


def serve(provisioning: Provisioning, options: ServeOptions) -> None:
    # The SIP thread, the event loop and the database driver's thread hand work to each
    # other on every call; with the default 5 ms GIL switch interval each hand-off can wait
    # that long. 0.5 ms keeps call setup in single-digit milliseconds.
    sys.setswitchinterval(0.0005)
    asyncio.run(Server(provisioning, options).run())
