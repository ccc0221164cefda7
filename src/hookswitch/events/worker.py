"""The events worker: the leg recorder and the webhook sender in a process of their own.

One GIL carried SIP signalling, the call switch, the database writes and the webhook POSTs;
at about 110 calls/s the SIP thread and the writer fought over it and call events fell
seconds behind. The server process now only hands its records over a socket pair; this
process writes them (the one writer, ``Recorder``) and delivers the events (``Sender``).

Frames each way are a 4-byte length and a pickle. Server → worker: a list of records
(``LegOpened``, ``LegChange``, ``BindingChange``, dialogs) and ``Request``s (a write command
the server waits for, store/writes.py), or ``STOP``. Worker → server: ``READY`` once the
outbox is loaded, then lists of ``OutboxEvent`` for the live stream (SSE), a ``Reply``
to each request once its transaction has committed, and its metrics (``WorkerMetrics``)
once a second.

The worker ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): it stops
when the server sends ``STOP`` or when the socket closes because the server died, in both
cases after writing every record it has read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from hookswitch.events.outbox import OutboxDelivery, OutboxEvent, Subscriptions
from hookswitch.events.recorder import Record, Recorder
from hookswitch.events.sender import RetryPolicy, Sender
from hookswitch.events.stats import worker_text
from hookswitch.events.takeover import TakenOver
from hookswitch.heap import settle_after_startup
from hookswitch.logs import configure_logging
from hookswitch.metrics import WORKER_RESTARTS
from hookswitch.store.db import make_engine, session_factory
from hookswitch.store.lock import DEFAULT_NODE
from hookswitch.store.writes import WriteCommand

log = structlog.get_logger("hookswitch.events")

STOP = "stop"
READY = "ready"
_LENGTH = struct.Struct(">I")
START_TIMEOUT = 60.0  # seconds for the worker to start and load the outbox


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """The worker's metrics in Prometheus' text format, sent once a second."""

    text: str


METRICS_EVERY = 1.0  # seconds between the worker's metrics frames


@dataclass(frozen=True, slots=True)
class Request:
    """A write command from the server, answered by a ``Reply`` with the same id."""

    id: int
    command: WriteCommand


@dataclass(frozen=True, slots=True)
class Reply:
    id: int
    result: object = None
    error: str | None = None


class WorkerUnavailable(Exception):
    """The events worker died before it answered; the write may not have happened."""


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        return pickle.loads(await reader.readexactly(_LENGTH.unpack(header)[0]))
    except asyncio.IncompleteReadError:
        return None


class EventsWorker:
    """The server's end: starts the worker process and feeds it records, in order."""

    def __init__(self, database: str, policy: RetryPolicy,
                 on_events: Callable[[list[OutboxEvent]], None],
                 node_id: str = DEFAULT_NODE) -> None:
        self._database = database
        self._node_id = node_id
        self._policy = policy
        self._on_events = on_events
        self._pending: list[Record | Request] = []  # put in this loop turn, sent at its end
        self._calls: dict[int, asyncio.Future[object]] = {}
        self._call_ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Task[None] | None = None
        self._stopping = False
        self.metrics_text = ""  # the worker's metrics, as it last sent them

    async def start(self) -> None:
        if self._writer is not None:  # a restart: the old socket is dead
            self._writer.close()
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = await asyncio.create_subprocess_exec(
                # -P: the current directory is not on its path, so a file there named like
                # a standard module (enum.py, re.py) cannot break it.
                sys.executable, "-P", "-m", "hookswitch.events.worker",
                "--fd", str(theirs.fileno()), "--database", self._database,
                "--node-id", self._node_id,
                "--retry", json.dumps(asdict(self._policy)),
                *(["--verbose"] if logging.getLogger().isEnabledFor(logging.DEBUG) else []),
                pass_fds=(theirs.fileno(),),
            )
        reader, self._writer = await asyncio.open_connection(sock=ours)
        try:
            first = await asyncio.wait_for(_read_frame(reader), START_TIMEOUT)
        except TimeoutError:
            first = None
        if first != READY:
            if self._process.returncode is None:
                self._process.kill()
            await self._process.wait()
            raise RuntimeError("the events worker did not start (see its log above)")
        self._reading = asyncio.create_task(self._read(reader), name="events-worker-read")

    def put(self, record: Record | Request) -> None:
        if not self._pending:
            # One frame per loop iteration, whatever the number of records in it.
            asyncio.get_running_loop().call_soon(self._send)
        self._pending.append(record)

    async def call(self, command: WriteCommand) -> object:
        """Have the one writer run ``command`` after every record sent before it; return
        its result once committed (store/writes.py)."""
        call_id = next(self._call_ids)
        answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = answer
        self.put(Request(call_id, command))
        try:
            return await answer
        finally:
            self._calls.pop(call_id, None)

    def _send(self) -> None:
        records, self._pending = self._pending, []
        if self._writer is not None and records:
            self._writer.write(_frame(records))

    async def stop(self, timeout: float = 30.0) -> None:
        """Send what is pending, then STOP; wait until the worker has written it all."""
        self._stopping = True
        self._send()
        if self._writer is None or self._process is None:
            return
        with contextlib.suppress(ConnectionError):
            self._writer.write(_frame(STOP))
            await self._writer.drain()
        try:
            await asyncio.wait_for(self._process.wait(), timeout)
        except TimeoutError:
            log.error("events.worker_stop_timeout", timeout=timeout)
            self._process.kill()
            await self._process.wait()
        if self._reading is not None:
            self._reading.cancel()
        self._writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await _read_frame(reader)) is not None:
            if isinstance(message, Reply):
                self._answer(message)
                continue
            if isinstance(message, WorkerMetrics):
                self.metrics_text = message.text
                continue
            try:
                self._on_events(message)
            except Exception:  # the live stream must not stop reading the worker
                log.exception("events.publish_failed")
        for answer in self._calls.values():
            if not answer.done():
                answer.set_exception(WorkerUnavailable("the events worker stopped"))
        if not self._stopping:
            # Records sent since its last commit may be lost; the next start closes any
            # leg this leaves open (HANGUP, reason failed).
            log.error("events.worker_died", returncode=await self._wait_exit())
            WORKER_RESTARTS.inc()
            try:
                await self.start()
            except Exception:
                log.exception("events.worker_restart_failed")

    def _answer(self, reply: Reply) -> None:
        answer = self._calls.get(reply.id)
        if answer is None or answer.done():
            return
        if reply.error is not None:
            answer.set_exception(WorkerUnavailable(f"the write failed: {reply.error}"))
        else:
            answer.set_result(reply.result)

    async def _wait_exit(self) -> int | None:
        assert self._process is not None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._process.wait(), 5)
        return None


# --- the worker process ------------------------------------------------------------------


async def _serve(fd: int, database: str, policy: RetryPolicy,
                 node_id: str = DEFAULT_NODE) -> None:
    engine = make_engine(database)
    sessions = session_factory(engine)
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    async with sessions() as session:
        subscriptions = await Subscriptions.load(session)

    def events_written(events: list[OutboxEvent], deliveries: list[OutboxDelivery]) -> None:
        sender.enqueue(events, deliveries)
        writer.write(_frame(events))

    recorder = Recorder(sessions, subscriptions, events_written, node_id)
    sender = Sender(sessions, subscriptions, recorder.write, policy, node_id=node_id)
    await sender.start()  # first what a crash or a stop left in the outbox
    recorder.start()
    settle_after_startup()
    writer.write(_frame(READY))
    replies: set[asyncio.Task[None]] = set()

    async def send_metrics() -> None:
        while True:
            writer.write(_frame(WorkerMetrics(worker_text())))
            await asyncio.sleep(METRICS_EVERY)  # a period, not a synchronisation

    metrics = asyncio.create_task(send_metrics(), name="worker-metrics")

    async def reply(request: Request) -> None:
        try:
            result = await recorder.write(request.command.run)
            if isinstance(result, TakenOver):
                # A dead node's: its HANGUPs to the live streams (this node's and, through
                # the server, the cluster's), and its pending deliveries, which the outbox
                # now says are this node's, sent with the HANGUPs in event order per leg.
                if result.events:
                    writer.write(_frame(result.events))
                try:
                    await sender.load_pending()
                except Exception:
                    # Committed: the reply must still carry the dialogs to BYE. The next
                    # rescan (a few seconds) queues the deliveries.
                    log.exception("events.takeover_load_failed", node=result.dead)
            if getattr(request.command, "changes_subscriptions", False):
                # An activation began or ended: its user's events go elsewhere from now on.
                async with sessions() as session:
                    subscriptions.replace_with(await Subscriptions.load(session))
            writer.write(_frame(Reply(request.id, result)))
        except Exception as exc:
            log.exception("events.request_failed", command=type(request.command).__name__)
            writer.write(_frame(Reply(request.id, error=type(exc).__name__)))

    try:
        while (message := await _read_frame(reader)) not in (None, STOP):
            items: Sequence[Record | Request] = message
            for item in items:
                if isinstance(item, Request):
                    # recorder.write queues it behind the records before it: order is kept.
                    task = asyncio.create_task(reply(item))
                    replies.add(task)
                    task.add_done_callback(replies.discard)
                else:
                    recorder.put(item)
    finally:
        metrics.cancel()
        await recorder.drain()
        await sender.stop()  # what it did not deliver stays in the outbox
        await engine.dispose()
        writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="hookswitch events worker (started by serve)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--retry", default="{}", help="RetryPolicy fields, as JSON")
    parser.add_argument("--node-id", default=DEFAULT_NODE)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the server decides when this stops
    configure_logging(args.verbose)
    asyncio.run(_serve(args.fd, args.database, RetryPolicy(**json.loads(args.retry)),
                       args.node_id))


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: frames are unpickled as
    # hookswitch.events.worker classes, which isinstance() must recognise.
    from hookswitch.events import worker

    worker.main()
