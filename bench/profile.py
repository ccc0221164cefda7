"""py-spy around a load step, and the hot spots of its collapsed-stack output.

``py-spy record --format raw`` writes one line per distinct stack:
``thread;frame;frame;... count`` with frames like ``func (path/to/file.py:123)``.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness import processes
from harness.processes import Proc

# Frames on nearly every stack (thread start, the CLI, the event loop): left out of totals.
_GENERIC = ("threading.py:", "<frozen runpy>", "typer/", "asyncio/runners.py",
            "asyncio/base_events.py", "asyncio/events.py:Handle._run", "click/")
_ENTRY = ("bin/hookswitch", "hookswitch/__main__.py", "hookswitch/cli.py",
          "hookswitch/server.py:serve")
_BIN = f"{Path(sys.executable).parent}/"  # where the installed hookswitch command is
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+)(?::\d+)?\)$")


def pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, out: Path, seconds: int, *, fmt: str, gil: bool) -> Proc:
    exe = pyspy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    # Blocking sampling (py-spy pauses the process briefly for each sample): with
    # --nonblocking a third of the samples were lost to stacks that changed mid-read.
    args = [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
            "--format", fmt, "--output", str(out), "--subprocesses"]
    if gil:
        args.append("--gil")
    return processes.start(f"py-spy-{fmt}", args, out.with_suffix(".log"))


def _short(path: str) -> str:
    if path.startswith(_BIN):
        return "bin/" + path[len(_BIN):]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _frames(stack: str) -> list[str]:
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw.strip())
        if match:
            frames.append(f"{_short(match['file'])}:{match['func']}")
    return frames


@dataclass(frozen=True)
class HotSpots:
    samples: int
    self_share: list[tuple[str, float]]  # leaf frame, % of samples
    total_share: list[tuple[str, float]]  # frame anywhere on the stack, % of samples
    own_code: list[tuple[str, float]]  # hookswitch frames anywhere on the stack, %
    activities: list[tuple[str, float]]  # what the sample was doing (ACTIVITIES), %
    packages: list[tuple[str, float]]  # top-level package of the leaf frame, %
    imports: float  # % of samples importing a module (a failed import is retried each time)


# What a sample was doing: the first rule with a frame containing its text wins.
ACTIVITIES = (
    ("webhook sender (events/sender.py)", "hookswitch/events/sender.py"),
    ("leg recorder + outbox (store/recorder.py)", "hookswitch/store/recorder.py"),
    ("webhook HTTP client (aiohttp)", "aiohttp/"),
    ("event stream (events/stream.py)", "hookswitch/events/stream.py"),
    ("HTTP API (uvicorn, FastAPI)", "uvicorn/"),
    ("HTTP API (uvicorn, FastAPI)", "starlette/"),
    ("call switch (calls/, server.py)", "hookswitch/calls/"),
    ("call switch (calls/, server.py)", "hookswitch/server.py:Server.on_signal"),
    ("SIP thread (sippy + sip/)", "sippy/Core/EventDispatcher.py"),
    ("sippy UDP reader/writer threads", "sippy/Udp_server.py"),
    ("aiosqlite worker thread", "aiosqlite/core.py:_connection_worker_thread"),
    ("SQLAlchemy, caller not on the stack", "sqlalchemy/"),
    ("asyncio loop (select, wake-ups)", "asyncio/"),
    ("asyncio loop (select, wake-ups)", "selectors.py"),
)


def activity(frames: list[str]) -> str:
    for label, text in ACTIVITIES:
        if any(text in frame for frame in frames):
            return label
    return "other"


def hot_spots(raw: Path, top: int = 15) -> HotSpots:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    package: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    doing: Counter[str] = Counter()
    importing = 0
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not frame.startswith(_GENERIC + _ENTRY):
                total[frame] += count
            if frame.startswith("hookswitch/") and not frame.startswith(_ENTRY):
                ours[frame] += count
        package[frames[-1].split("/", 1)[0].split(".", 1)[0]] += count
        doing[activity(frames)] += count
        importing += count if any("importlib" in frame for frame in frames) else 0

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, 100 * v / samples) for k, v in counter.most_common(top)] if samples else []

    return HotSpots(samples, share(own), share(total), share(ours), share(doing),
                    share(package), 100 * importing / samples if samples else 0.0)


def render(spots: HotSpots) -> str:
    lines = [f"{spots.samples} samples (GIL holder, 100 Hz)", "", "self time (leaf frame):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.self_share]
    lines += ["", "total time (frame anywhere on the stack; thread, CLI and loop frames left out):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.total_share]
    lines += ["", "hookswitch code (frame anywhere on the stack):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.own_code]
    lines += ["", "by activity:"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.activities]
    lines += ["", f"importing modules at run time: {spots.imports:.1f}%"]
    lines += ["", "self time by package:"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in spots.packages]
    return "\n".join(lines) + "\n"
