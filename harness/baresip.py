"""A real SIP phone for tests: baresip 1.0 run headless and driven over ``ctrl_tcp``.

Usage::

    with Baresip(tmp_path, "201", "secret", ("127.0.0.1", 5060)) as phone:
        phone.wait_registered()
        phone.dial("sip:202@127.0.0.1:5060")
        phone.wait_event("CALL_ESTABLISHED")
        phone.hangup()
        phone.wait_event("CALL_CLOSED")

How it works: a config directory is written under ``workdir`` (loopback only, SIP on an
ephemeral port pair, ``ctrl_tcp`` on an ephemeral TCP port, codecs g711 only, audio from a
generated 120 s 8 kHz tone through ``aufile``, playback into ``aubridge``). The accounts
file starts empty; once the harness is connected to ``ctrl_tcp`` it creates the account
with the ``uanew`` command, so that no REGISTER event can happen before anyone listens.

ctrl_tcp speaks netstrings (``<len>:<json>,``). Commands are
``{"command": "dial", "params": "sip:...", "token": "7"}``; the reply is
``{"response": true, "ok": true, "data": "<text>", "token": "7"}``.

Events (JSON objects with ``"event": true``) as baresip 1.0.0 really sends them. Always
present: ``type``, ``class`` (``"call"``, ``"register"``, ``"other"``, ...), ``accountaor``
(``"sip:201@127.0.0.1:5060"``). Call events add ``direction`` (``"incoming"`` or
``"outgoing"``), ``peeruri`` (the other party's URI from From/To, e.g.
``"sip:+3228992675@127.0.0.1:5070"``), ``peerdisplayname`` (ONLY on incoming calls, and only
when the From header has a display name: ``"Alice Doe"``), ``id`` (the SIP Call-ID; absent on
the first ``CALL_LOCAL_SDP`` of an outgoing call) and ``param``:

- ``REGISTERING`` / ``REGISTER_OK`` / ``REGISTER_FAIL`` / ``UNREGISTERING``: no call fields;
  ``param`` is e.g. ``"200 OK"`` or a failure reason (``"403 Forbidden"``).
- ``CALL_INCOMING``: ``param`` = caller URI. Sent only with ``answermode=manual``; with
  ``answermode=auto`` baresip 1.0 answers at once and sends no ``CALL_INCOMING``
  (use ``incoming_call()``, which also accepts the first incoming ``CALL_ESTABLISHED``).
- ``CALL_RINGING`` (outgoing, a 180 arrived), ``CALL_PROGRESS`` (183 with SDP).
- ``CALL_ESTABLISHED``: ``param`` = peer URI.
- ``CALL_CLOSED``: ``param`` = reason: ``"Connection reset by user"`` (we hung up),
  ``"Connection reset by peer"`` (BYE received), ``"486 Busy Here"`` / ``"486 Rejected"``
  (SIP status of a failed outgoing call), ``"Request terminated"``...
- ``CALL_LOCAL_SDP`` / ``CALL_REMOTE_SDP`` (class ``"other"``): ``param`` ``"offer"`` or
  ``"answer"``. These are the only events a re-INVITE produces.
- ``CALL_RTPESTAB`` (``param`` ``"audio"``, first RTP received), ``CALL_RTCP`` (with
  ``rtcp_stats``), ``CALL_DTMF_START``/``CALL_DTMF_END``, ``EXIT``/``SHUTDOWN``.

Hold/resume: ``hold()`` sends a re-INVITE with ``a=sendonly``, ``resume()`` one with
``a=sendrecv``. Neither side gets a hold event: the holder only sees ``CALL_REMOTE_SDP``
(``param`` ``"answer"``), the held side only ``CALL_REMOTE_SDP`` (``"offer"``); its answer
says ``a=recvonly``. To check the SDP, use ``received("INVITE")`` / ``sent(200)``, parsed
from baresip's SIP trace (``-s``) in the log. ``hold``/``resume``/``sndcode`` only exist
as commands while a call is up (otherwise ``ok`` is false, ``"command not found (hold)"``).

Each event dict also gets ``"_t"`` (``time.monotonic()`` when the harness read it).
A display name with quotes arrives still escaped (``'Alice \\"Q\\" Doe'``).
baresip's Contact user is not the account user: ``<sip:201-0x55f868509380@127.0.0.1:PORT>``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import socket
import struct
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import processes
from .ports import HOST, free_tcp_port, free_udp_port_pair
from .processes import ChildProcess, Proc, read_log
from .siplog import MessageLog, SipMessage, parse_baresip_trace
from .wait import wait_until

BARESIP = "baresip"
MODULE_PATH = "/usr/lib/baresip/modules"

Event = dict[str, Any]

_TONE_SECONDS = 120
_TONE_RATE = 8000


def write_tone_wav(path: Path, seconds: int = _TONE_SECONDS, freq: float = 440.0) -> Path:
    """Write an 8 kHz mono 16-bit WAV with a sine tone (baresip's call ends with the file)."""
    one_second = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / _TONE_RATE)))
        for i in range(_TONE_RATE)
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_TONE_RATE)
        wav.writeframes(one_second * seconds)
    return path


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip(ChildProcess, MessageLog):
    """One baresip phone, as a context manager (``stop()`` on exit, always)."""

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str,
        registrar: tuple[str, int],
        *,
        answermode: str = "manual",
        register: bool = True,
        display_name: str | None = None,
        domain: str | None = None,
        regint: int | None = None,
        extra_account_params: str = "",
        sip_trace: bool = True,
        start_timeout: float = 10.0,
    ) -> None:
        """``registrar`` is where REGISTER and calls go; the AOR is ``sip:user@HOST:PORT``
        unless ``domain`` is given (then ``sip:user@domain`` with ``outbound`` set to the
        registrar). ``register=False`` adds ``regint=0`` (no REGISTER at all); ``regint``
        sets the re-registration interval in seconds otherwise."""
        if answermode not in ("manual", "auto", "early"):
            raise ValueError(f"bad answermode {answermode!r}")
        self.user = user
        self.name = f"baresip {user}"
        self.password = password
        self.registrar = registrar
        self.answermode = answermode
        self.register = register
        self.display_name = display_name
        self.domain = domain
        self.regint = regint
        self.extra_account_params = extra_account_params
        self.sip_trace = sip_trace
        self.start_timeout = start_timeout

        self.port = free_udp_port_pair()
        self.ctrl_port = free_tcp_port()
        self.workdir = Path(workdir) / f"baresip-{user}-{self.port}"
        self.config_dir = self.workdir / "config"
        self.log_file = self.workdir / "baresip.log"
        self.wav_file = self.workdir / "tone.wav"

        self.events: list[Event] = []
        self._responses: dict[str, Event] = {}
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._proc: Proc | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._stopped = False

    # -- identity ----------------------------------------------------------------------------

    @property
    def aor(self) -> str:
        host = self.domain or f"{self.registrar[0]}:{self.registrar[1]}"
        return f"sip:{self.user}@{host}"

    @property
    def uri(self) -> str:
        """Where this phone can be called directly: ``sip:USER@127.0.0.1:PORT``."""
        return f"sip:{self.user}@{HOST}:{self.port}"

    def account_line(self) -> str:
        name = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        line = f"{name}<{self.aor}>;auth_pass={self.password};answermode={self.answermode}"
        if self.domain is not None:
            host, port = self.registrar
            line += f';outbound="sip:{host}:{port}"'
        if not self.register:
            line += ";regint=0"
        elif self.regint is not None:
            line += f";regint={self.regint}"
        if self.extra_account_params:
            line += ";" + self.extra_account_params.lstrip(";")
        return line

    # -- lifecycle ---------------------------------------------------------------------------

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if not self.wav_file.exists():
            write_tone_wav(self.wav_file)
        config = f"""\
poll_method\t\tepoll
module_path\t\t{MODULE_PATH}
net_interface\t\t{HOST}
sip_listen\t\t{HOST}:{self.port}
dns_server\t\t{HOST}:53
call_local_timeout\t120
call_max_calls\t\t4
audio_player\t\taubridge,nil
audio_source\t\taufile,{self.wav_file}
audio_alert\t\taubridge,nil
ausrc_srate\t\t{_TONE_RATE}
auplay_srate\t\t{_TONE_RATE}
ausrc_channels\t\t1
auplay_channels\t\t1
audio_level\t\tno
rtp_stats\t\tno
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t{HOST}:{self.ctrl_port}
statmode_default\toff
ringback_disabled\tyes
menu_bell\t\tno
"""
        (self.config_dir / "config").write_text(config)
        # Empty on purpose: the account is created with "uanew" once ctrl_tcp is connected.
        (self.config_dir / "accounts").write_text("")
        (self.config_dir / "contacts").write_text("")

    def start(self) -> Baresip:
        if self._proc is not None:
            raise RuntimeError("baresip already started")
        self._write_config()
        args = [BARESIP, "-f", str(self.config_dir)]
        if self.sip_trace:
            args.append("-s")
        self._proc = processes.start(f"baresip-{self.user}", args, self.log_file,
                                     cwd=self.workdir)
        try:
            self._sock = wait_until(
                self._try_connect,
                self.start_timeout,
                interval=0.05,
                message=f"baresip ctrl_tcp {HOST}:{self.ctrl_port} never came up",
            )
            self._reader = threading.Thread(
                target=self._read_loop, name=f"baresip-{self.user}", daemon=True
            )
            self._reader.start()
            response = self.command("uanew", self.account_line())
            if not response.get("ok") or "Creating UA" not in str(response.get("data")):
                raise AssertionError(f"baresip uanew failed: {response}")
        except BaseException:
            self.stop()
            raise
        return self

    def _try_connect(self) -> socket.socket | None:
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"baresip exited with {proc.returncode} during start\n{self.log()[-3000:]}"
            )
        try:
            return socket.create_connection((HOST, self.ctrl_port), timeout=0.5)
        except OSError:
            return None

    def _read_loop(self) -> None:
        sock = self._sock
        if sock is None:
            return
        sock.settimeout(None)
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                colon = buffer.find(b":")
                if colon < 0:
                    break
                length = int(buffer[:colon])
                end = colon + 1 + length
                if len(buffer) < end + 1:
                    break
                payload = buffer[colon + 1 : end]
                buffer = buffer[end + 1 :]  # drop the trailing ","
                self._dispatch(payload)

    def _dispatch(self, payload: bytes) -> None:
        try:
            message = json.loads(payload.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        with self._lock:
            if message.get("event"):
                message["_t"] = time.monotonic()
                self.events.append(message)
            elif message.get("response"):
                self._responses[str(message.get("token"))] = message

    def stop(self) -> int | None:
        """Quit baresip (``quit`` command, then SIGTERM, then SIGKILL). Idempotent.

        Returns the exit code (negative: killed by that signal), ``None`` if never started."""
        proc = self._proc
        if proc is None:
            return None
        if not self._stopped:
            self._stopped = True
            if proc.poll() is None and self._sock is not None:
                # "quit" unregisters first; that can hang if the registrar is gone.
                with contextlib.suppress(OSError):
                    self._send({"command": "quit", "params": "", "token": "quit"})
                proc.exited(2)
            proc.stop(grace=0.5)
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.close()
            if self._reader is not None:
                self._reader.join(timeout=2)
        return proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- commands ----------------------------------------------------------------------------

    def _send(self, message: dict[str, str]) -> None:
        if self._sock is None:
            raise RuntimeError("baresip not started")
        self._sock.sendall(_netstring(json.dumps(message).encode()))

    def command(
        self, name: str, params: str = "", *, timeout: float = 5.0, check: bool = False
    ) -> Event:
        """Run a baresip command over ctrl_tcp; return the response dict
        (``{"response": True, "ok": bool, "data": str, "token": str}``).
        ``check=True`` raises ``AssertionError`` when ``ok`` is false."""
        token = str(next(self._tokens))
        self._send({"command": name, "params": params, "token": token})

        def response() -> Event | None:
            with self._lock:
                return self._responses.pop(token, None)

        result: Event = wait_until(
            response,
            timeout,
            message=f"baresip gave no response to {name!r} {params!r} in {timeout}s",
        )
        if check and not result.get("ok"):
            raise AssertionError(f"baresip command {name!r} {params!r} failed: {result}")
        return result

    def dial(self, uri: str) -> Event:
        """Call ``uri`` (``sip:200@127.0.0.1:5060``, or just ``200`` for the AOR domain)."""
        return self.command("dial", uri, check=True)

    def answer(self) -> Event:
        """Answer the ringing incoming call (baresip's ``accept``)."""
        return self.command("accept", check=True)

    def hangup(self) -> Event:
        """Hang up the current call: BYE when up, CANCEL when dialling, 486 when ringing."""
        return self.command("hangup", check=True)

    def hold(self) -> Event:
        return self.command("hold", check=True)

    def resume(self) -> Event:
        return self.command("resume", check=True)

    def transfer(self, uri: str) -> Event:
        """The phone's own (blind) transfer of the current call: REFER to ``uri``."""
        return self.command("transfer", uri, check=True)

    def send_dtmf(self, digits: str) -> None:
        """Send DTMF as RTP telephone-events (menu's in-call digit keys)."""
        for digit in digits:
            self.command("sndcode", digit)

    # -- events ------------------------------------------------------------------------------

    def mark(self) -> int:
        """Index to pass as ``after=`` so that only events from now on are considered."""
        with self._lock:
            return len(self.events)

    def find_events(
        self,
        event_type: str | None = None,
        predicate: Callable[[Event], bool] | None = None,
        *,
        after: int = 0,
    ) -> list[Event]:
        with self._lock:
            candidates = list(self.events[after:])
        return [
            e
            for e in candidates
            if (event_type is None or e.get("type") == event_type)
            and (predicate is None or predicate(e))
        ]

    def wait_event(
        self,
        event_type: str,
        timeout: float = 10,
        predicate: Callable[[Event], bool] | None = None,
        *,
        after: int = 0,
    ) -> Event:
        """First event of ``event_type`` (among ``events[after:]``) matching ``predicate``.

        Raises ``AssertionError`` listing the events seen if none comes within ``timeout``."""

        def found() -> Event | None:
            matches = self.find_events(event_type, predicate, after=after)
            return matches[0] if matches else None

        return wait_until(
            found,
            timeout,
            message=f"baresip {self.user}: no {event_type} within {timeout}s; events: "
            + self.event_summary(after),
        )

    def wait_registered(self, timeout: float = 10, *, after: int = 0) -> Event:
        """Wait for ``REGISTER_OK``; fail at once on ``REGISTER_FAIL``."""

        def outcome() -> Event | None:
            matches = self.find_events(
                None, lambda e: e.get("type") in ("REGISTER_OK", "REGISTER_FAIL"), after=after
            )
            return matches[0] if matches else None

        event: Event = wait_until(
            outcome,
            timeout,
            message=f"baresip {self.user}: not registered within {timeout}s; events: "
            + self.event_summary(after),
        )
        if event["type"] != "REGISTER_OK":
            raise AssertionError(f"baresip {self.user}: registration failed: {event}")
        return event

    def incoming_call(self, timeout: float = 10, *, after: int = 0) -> Event:
        """The first incoming call event: ``CALL_INCOMING`` (manual answer) or, with
        ``answermode=auto`` where baresip sends none, the incoming ``CALL_ESTABLISHED``."""

        def found() -> Event | None:
            matches = self.find_events(
                None,
                lambda e: (
                    e.get("direction") == "incoming"
                    and e.get("type") in ("CALL_INCOMING", "CALL_ESTABLISHED")
                ),
                after=after,
            )
            return matches[0] if matches else None

        return wait_until(
            found,
            timeout,
            message=f"baresip {self.user}: no incoming call within {timeout}s; events: "
            + self.event_summary(after),
        )

    def incoming_display_name(self, timeout: float = 10, *, after: int = 0) -> str | None:
        """Display name of the caller of the first incoming call (``None`` if the From
        header had none: baresip then leaves ``peerdisplayname`` out)."""
        name = self.incoming_call(timeout, after=after).get("peerdisplayname")
        return str(name) if name is not None else None

    def event_summary(self, after: int = 0) -> str:
        with self._lock:
            events = list(self.events[after:])
        parts = [
            f"{e.get('type')}({e.get('param', '')})" for e in events if e.get("type") != "CALL_RTCP"
        ]
        return ", ".join(parts) or "(none)"

    # -- logs --------------------------------------------------------------------------------

    def log(self) -> str:
        """baresip's stdout/stderr (with ``sip_trace``, every SIP message sent/received)."""
        return read_log(self.log_file)

    def sip_messages(self) -> list[SipMessage]:
        """SIP messages from the trace in the log (needs ``sip_trace=True``), in order."""
        return parse_baresip_trace(self.log(), self.port)

    def diagnostics(self) -> str:
        return (
            f"baresip {self.user} port {self.port} ctrl {self.ctrl_port} "
            f"account {self.account_line()!r}\nevents: {self.event_summary()}\n"
            f"--- log tail ({self.log_file}) ---\n{self.log()[-3000:]}"
        )


def sdp_direction(message: str) -> str:
    """Media direction in a SIP message's SDP: ``sendrecv`` (also when absent),
    ``sendonly``, ``recvonly`` or ``inactive``; ``c=0.0.0.0`` counts as ``sendonly``."""
    body = message.split("\n\n", 1)[1] if "\n\n" in message else ""
    for line in body.splitlines():
        line = line.strip()
        if line in ("a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv"):
            return line[2:]
    if "c=IN IP4 0.0.0.0" in body:
        return "sendonly"
    return "sendrecv"
