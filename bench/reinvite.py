"""Call-control latency: from a hold, resume or blind-transfer request leaving the API
client to the (re-)INVITE it causes reaching a phone.

Three plain UDP socket phones, registered as 210 (the user), 200 and 220, answer every
INVITE and re-INVITE ``200 OK`` with an SDP (the answer's direction as RFC 3264 6.1 says),
every BYE ``200 OK``, and timestamp each INVITE, ACK and BYE on arrival. One sample is one
call, one after the other:

1. click-to-dial 210 → 200; both phones answer; connected once 210's phone has had its
   re-INVITE with 200's SDP acknowledged;
2. ``hold`` 210's leg → the re-INVITE with ``a=sendonly`` at 200's phone (**hold**); 210's
   own phone gets ``a=inactive`` (hold_own);
3. ``resume`` → ``a=sendrecv`` at 200's phone (**resume**; resume_own at 210's);
4. blind ``transfer`` to 220 → the INVITE at 220's phone (**transfer**), which answers;
   then the re-INVITE with 220's SDP at 200's phone, the party kept (**reconnect**, also
   from the request); 210's phone gets BYE;
5. hangup of 220's new leg (its token): BYE at 200 and 220.

Each step waits for the ACK of every re-INVITE it caused before the next request, so a
request never meets a transaction still open, and checks what it timed: the SDP direction
(a=sendonly, a=sendrecv, a=inactive) and whose SDP it is (the m= port; each phone's media
port is its SIP port): 200 gets 210's SDP on hold and resume, 220 gets 200's, and 200 then
gets 220's. A step that does not happen within
``STEP_TIMEOUT_S`` loses the rest of that sample (counted by what was missing); the call is
hung up and the next sample starts once the phones have no dialog left.

    python -m bench.reinvite [--samples N] [--seconds S] [--work DIR]

starts its own hookswitch (no webhook) and prints the percentiles.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness import processes, sipp
from harness.ports import HOST, free_udp_port

from .sipphone import UdpPhone, body, header, response
from .stats import fmt, percentile
from .systems import CALLEE, CALLER, PASSWORDS, ROOT, TENANT, THIRD, TOKENS, Hookswitch

STEP_TIMEOUT_S = 5.0
# What each latency is measured to, in the order of the table.
METRICS = {
    "hold": "hold → re-INVITE a=sendonly at the other party",
    "resume": "resume → re-INVITE a=sendrecv at the other party",
    "transfer": "blind transfer → INVITE at the destination",
    "reconnect": "blind transfer → re-INVITE at the party kept (destination answered)",
    "hold_own": "hold → re-INVITE a=inactive at the user's own phone",
    "resume_own": "resume → re-INVITE a=sendrecv at the user's own phone",
}
_DIRECTION = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", re.M)
_BAD_LOG_LINE = re.compile(r"\[(warning|error|critical|exception)\s*\]|^Traceback")
_MEDIA_PORT = re.compile(r"^m=audio (\d+) ", re.M)
_ANSWER = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
           "sendrecv": "sendrecv"}  # RFC 3264 6.1


@dataclass(frozen=True)
class Arrival:
    """One request that reached a phone (retransmissions are not recorded again)."""

    method: str  # INVITE, ACK, BYE
    call_id: str
    cseq: int
    at: float  # time.time() on arrival
    initial: bool = False  # an INVITE that opens a dialog (no To tag)
    direction: str | None = None  # an INVITE's SDP direction; None: no SDP, or no a=
    media_port: int | None = None  # an INVITE's SDP m= port: whose SDP it is


class AnsweringPhone(UdpPhone):
    """A phone that answers everything at once and remembers what arrived when."""

    name = "reinvite-phone"

    def __init__(self, port: int, extension: str) -> None:
        super().__init__(port)
        self.extension = extension
        self.arrivals: list[Arrival] = []
        self._changed = threading.Condition()
        self._tags: dict[str, str] = {}  # Call-ID → our To tag
        self._versions: dict[str, int] = {}  # Call-ID → our SDP's o= version
        self._answers: dict[tuple[str, int], bytes] = {}  # a retransmission's same answer
        self.open: set[str] = set()  # Call-IDs of dialogs not ended by a BYE

    def mark(self) -> int:
        with self._changed:
            return len(self.arrivals)

    def wait(self, since: int, match: Callable[[Arrival], bool],
             timeout: float = STEP_TIMEOUT_S) -> Arrival | None:
        """The first arrival from index ``since`` on that ``match``es; None after
        ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((a for a in self.arrivals[since:] if match(a)), None)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._changed.wait(left)

    def idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.open and time.monotonic() < deadline:
                self._changed.wait(max(0.0, deadline - time.monotonic()))
            return not self.open

    def _sdp(self, call_id: str, direction: str) -> str:
        version = self._versions.get(call_id, 0) + 1
        self._versions[call_id] = version
        return (f"v=0\r\no=bench{self.extension} {self.port} {version} IN IP4 {HOST}\r\n"
                f"s=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                f"m=audio {self.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n")

    def handle(self, message: str, source: tuple[str, int], arrival: float) -> None:
        if message.startswith("SIP/2.0 "):
            return  # a response: this phone sends no requests
        method = message.split(" ", 1)[0]
        call_id = header(message, "call-id")
        number, _, _ = header(message, "cseq").partition(" ")
        cseq = int(number) if number.isdigit() else -1
        seen: Arrival | None = None
        if method == "INVITE":
            key = (call_id, cseq)
            answer = self._answers.get(key)
            if answer is None:
                sdp = body(message)
                match = _DIRECTION.search(sdp)
                offered = match.group(1) if match else None
                media = _MEDIA_PORT.search(sdp)
                initial = ";tag=" not in header(message, "to")
                tag = self._tags.setdefault(call_id, uuid.uuid4().hex[:10])
                answer = response(
                    message, "200 OK", tag,
                    contact=f"<sip:{self.extension}@{HOST}:{self.port}>",
                    sdp=self._sdp(call_id, _ANSWER.get(offered or "", "sendrecv")))
                self._answers[key] = answer
                seen = Arrival(method, call_id, cseq, arrival, initial, offered,
                               int(media.group(1)) if media else None)
            self.send(answer, source)
        elif method == "ACK":
            seen = Arrival(method, call_id, cseq, arrival)
        else:  # BYE, and anything else (OPTIONS, a CANCEL too late), is answered 200
            self.send(response(message, "200 OK", self._tags.get(call_id, "x")), source)
            if method == "BYE" and call_id in self.open:
                seen = Arrival(method, call_id, cseq, arrival)
                self._answers = {k: v for k, v in self._answers.items() if k[0] != call_id}
                self._versions.pop(call_id, None)
        if seen is not None:
            with self._changed:
                if seen.method == "INVITE":
                    self.open.add(call_id)
                elif seen.method == "BYE":
                    self.open.discard(call_id)
                self.arrivals.append(seen)
                self._changed.notify_all()


@dataclass(frozen=True)
class ReinviteResult:
    samples: int  # calls started
    complete: int  # calls that went through every step
    latencies_ms: dict[str, list[float]]  # METRICS name → one value a sample that got there
    problems: dict[str, int] = field(default_factory=dict)  # what went wrong → how often
    seconds: float = 0.0

    def pct(self, metric: str, value: float) -> float | None:
        return percentile(self.latencies_ms.get(metric, []), value)

    def lost(self, metric: str) -> int:
        return self.samples - len(self.latencies_ms.get(metric, []))

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.samples, "complete": self.complete, "seconds": round(self.seconds, 1),
            "problems": self.problems,
            "latency_ms": {name: {"what": what, "samples": len(self.latencies_ms.get(name, [])),
                                  "lost": self.lost(name), "p50": self.pct(name, 50),
                                  "p99": self.pct(name, 99), "max": self.pct(name, 100)}
                           for name, what in METRICS.items()},
        }


class _Lost(Exception):
    """A step of a sample that did not happen; the message says which."""


class _Sampler:
    """The three phones and the API client; ``sample`` runs one call through every step."""

    def __init__(self, client: httpx.Client, user: AnsweringPhone, other: AnsweringPhone,
                 third: AnsweringPhone) -> None:
        self.client, self.user, self.other, self.third = client, user, other, third
        self.latencies: dict[str, list[float]] = {name: [] for name in METRICS}
        self.leg: str | None = None  # 210's leg of the call under way
        self.new_leg: str | None = None  # 220's leg, once transferred

    def command(self, extension: str, name: str, expected: int, **payload: str
                ) -> tuple[float, dict[str, str]]:
        """POST the command as ``extension``: when it was sent, and the answer's JSON."""
        request = {"command": name, "user": {"tenant_id": TENANT, "user_extension": extension},
                   "payload": payload}
        sent = time.time()
        answer = self.client.post("/v3/call_control/", json=request,
                                  headers={"Authorization": f"Bearer {TOKENS[extension]}"})
        if answer.status_code != expected:
            raise _Lost(f"{name} answered {answer.status_code}")
        return sent, answer.json()

    @staticmethod
    def invite(phone: AnsweringPhone, since: int, what: str, *, call_id: str | None = None,
               initial: bool = False, direction: str | None = None,
               sdp_of: AnsweringPhone | None = None) -> Arrival:
        """The (re-)INVITE ``phone`` got from ``since`` on, once it has been ACKed; its SDP
        must have ``direction`` and be ``sdp_of``'s (its m= port: the phones' media port
        is their SIP port), when given."""
        found = phone.wait(since, lambda a: a.method == "INVITE" and a.initial == initial
                           and (call_id is None or a.call_id == call_id))
        if found is None:
            raise _Lost(f"{what}: no INVITE at {phone.extension}")
        if direction is not None and found.direction != direction:
            raise _Lost(f"{what}: a={found.direction} at {phone.extension}, not a={direction}")
        if sdp_of is not None and found.media_port != sdp_of.port:
            raise _Lost(f"{what}: {phone.extension} got m= port {found.media_port}, not "
                        f"{sdp_of.extension}'s")
        acked = phone.wait(since, lambda a: a.method == "ACK" and a.call_id == found.call_id
                           and a.cseq == found.cseq)
        if acked is None:
            raise _Lost(f"{what}: no ACK at {phone.extension}")
        return found

    def took(self, metric: str, sent: float, arrival: Arrival) -> None:
        self.latencies[metric].append((arrival.at - sent) * 1000)

    def sample(self) -> None:
        user, other, third = self.user, self.other, self.third
        self.leg = self.new_leg = None
        marks = user.mark(), other.mark()
        _, started = self.command(CALLER, "click-to-dial", 202, destination=CALLEE)
        self.leg = started["call_leg_id"]
        mine = self.invite(user, marks[0], "click-to-dial", initial=True)
        theirs = self.invite(other, marks[1], "click-to-dial", initial=True, sdp_of=user)
        self.invite(user, marks[0], "connect", call_id=mine.call_id, sdp_of=other)

        for name, there, here in (("hold", "sendonly", "inactive"),
                                  ("resume", "sendrecv", "sendrecv")):
            marks = user.mark(), other.mark()
            sent, _ = self.command(CALLER, name, 200, call_leg_id=self.leg)
            self.took(name, sent, self.invite(other, marks[1], name, call_id=theirs.call_id,
                                              direction=there, sdp_of=user))
            self.took(f"{name}_own", sent, self.invite(user, marks[0], name,
                                                       call_id=mine.call_id, direction=here))

        before = user.mark(), other.mark(), third.mark()
        sent, moved = self.command(CALLER, "transfer", 202, call_leg_id=self.leg,
                                   destination=THIRD)
        self.new_leg = moved.get("transfer_call_leg_id")
        if self.new_leg is None:
            raise _Lost("transfer: no transfer_call_leg_id")
        self.took("transfer", sent, self.invite(third, before[2], "transfer", initial=True,
                                                sdp_of=other))
        self.took("reconnect", sent, self.invite(other, before[1], "reconnect",
                                                 call_id=theirs.call_id, direction="sendrecv",
                                                 sdp_of=third))
        if user.wait(before[0], lambda a: a.method == "BYE" and a.call_id == mine.call_id) is None:
            raise _Lost("transfer: no BYE at the user's phone")
        self.command(THIRD, "hangup", 200, call_leg_id=self.new_leg)

    def clean_up(self) -> None:
        """After a lost sample: hang up what is left of its call (errors ignored)."""
        for extension, leg in ((THIRD, self.new_leg), (CALLER, self.leg)):
            if leg is not None:
                with contextlib.suppress(_Lost, httpx.HTTPError):
                    self.command(extension, "hangup", 200, call_leg_id=leg)


def run(workdir: Path, server: Hookswitch, *, samples: int, time_limit_s: float
        ) -> ReinviteResult:
    phones: list[AnsweringPhone] = []
    latencies: dict[str, list[float]] = {name: [] for name in METRICS}
    problems: Counter[str] = Counter()
    done = complete = 0
    began = time.monotonic()
    try:
        for extension in (CALLER, CALLEE, THIRD):
            port = free_udp_port()
            sipp.register(workdir, port, server.sip, extension, PASSWORDS[extension])
            phones.append(AnsweringPhone(port, extension))
            phones[-1].start()
        with httpx.Client(base_url=server.http, timeout=10.0) as client:
            client.get("/healthz")  # open the keep-alive connection before timing
            sampler = _Sampler(client, *phones)
            latencies = sampler.latencies
            give_up = began + time_limit_s
            while done < samples and time.monotonic() < give_up:
                if not all(phone.idle(STEP_TIMEOUT_S) for phone in phones):
                    problems["a phone still had a dialog before the next call"] += 1
                done += 1
                try:
                    sampler.sample()
                    complete += 1
                except (_Lost, httpx.HTTPError) as exc:
                    problems[str(exc) or type(exc).__name__] += 1
                    sampler.clean_up()
            for phone in phones:  # the last call's BYEs
                phone.idle(STEP_TIMEOUT_S)
    finally:
        for phone in phones:
            phone.stop()
    return ReinviteResult(done, complete, latencies, dict(problems),
                          time.monotonic() - began)


def server_log_problems(log: Path) -> list[str]:
    """The lines of a hookswitch log at level warning or worse, and traceback starts."""
    return [line for line in processes.read_log(log).splitlines()
            if _BAD_LOG_LINE.search(line)]


def describe(result: ReinviteResult) -> list[str]:
    lines = [f"  {result.complete}/{result.samples} calls through every step in "
             f"{result.seconds:.1f} s"]
    for name, what in METRICS.items():
        lines.append(f"  {what:70} p50 {fmt(result.pct(name, 50)):>6} ms  "
                     f"p99 {fmt(result.pct(name, 99)):>6} ms  lost {result.lost(name)}")
    lines += [f"  !! {count} times: {problem}" for problem, count in result.problems.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120, help="time limit")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "reinvite",
                        help="logs and the database go here (emptied first)")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()  # hookswitch runs in a folder of its own
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    server = Hookswitch(args.work / "hookswitch", free_udp_port(), None)
    try:
        server.start()
        result = run(args.work, server, samples=args.samples, time_limit_s=args.seconds)
    finally:
        code = server.stop()
        processes.stop_all()
    print("\n".join(describe(result)))
    errors = server_log_problems(server.server.workdir / "server.log")
    print(f"  hookswitch exited {code}; {len(errors)} warning/error lines in its log")
    for line in errors[:10]:
        print(f"    {line}")
    return 0 if result.complete == result.samples and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
