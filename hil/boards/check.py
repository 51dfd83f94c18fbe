"""`hil boards check`: reach a board through its transport and ask it what it is (hil/boards/probe.py,
run by the board's Python), beside what its profile says. Over the serial link, where no command
runs, the payload's own `ping` and `status` answer instead (`check_link`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from hil.boards.profile import Board
from hil.boards.serial import SerialTransport
from hil.boards.transport import Transport
from hil.errors import BoardError, TransportError
from onboard.schema import Count, Finite, Name, Schema, Text, convert, decode

PROBE = Path(__file__).with_name("probe.py")
TIMEOUT = 60.0  # s for each question: an emulated board's Python starts slowly


class Interpreter(Schema):
    module: Name
    version: Name | None


class Answer(Schema):
    """What the probe answers, checked like any input from outside."""

    arch: Name
    python: Name
    libc: tuple[Text, Text]  # ("glibc", "2.36"); ("", "") where Python cannot tell
    executable: Text
    cwd: Text
    disk_free: Count
    disk_total: Count
    mem_available: Count | None
    mem_total: Count | None
    cores: Annotated[int, Meta(ge=1, le=65536)] | None
    interpreter: Interpreter | None
    edgetpu: Annotated[tuple[Name, ...], Meta(max_length=64)]


@dataclass(frozen=True)
class Check:
    arch: str  # uname -m
    answer: Answer | None  # None: no python3 on the board
    why_no_python: str = ""
    # the same, asked of the deployed runtime's Python (hil deploy), or why there is none; None
    # where the runtime is the board's python3 itself (local)
    deployed: Answer | str | None = None


def check_board(transport: Transport) -> Check:
    """Ask the board through `transport`; TransportError if it cannot be reached."""
    arch = transport.run(["uname", "-m"], timeout=TIMEOUT).check("uname -m").stdout.decode(errors="replace").strip()
    try:
        done = transport.run([transport.python, "-"], timeout=TIMEOUT, stdin=PROBE.read_bytes())
    except TransportError as exc:
        return Check(arch, None, str(exc))
    done.check("the probe (python3)")
    answer = _answer(done.stdout, "python3")
    deployed = None
    if transport.runtime and transport.runtime[0] != transport.python:  # a runtime deployed apart from python3
        there = transport.run([transport.runtime[0], "-"], timeout=TIMEOUT, stdin=PROBE.read_bytes())
        deployed = _answer(there.stdout, "the deployed runtime") if there.returncode == 0 else \
            "no runtime (orbitlite hil deploy)"
    return Check(arch, answer, deployed=deployed)


def _answer(stdout: bytes, who: str) -> Answer:
    lines = stdout.strip().splitlines()
    if not lines:
        raise BoardError(f"the board's {who} answered nothing to the probe")
    return decode(lines[-1], Answer, source=f"the board's answer to the probe ({who})", error=BoardError)


class LinkStatus(msgspec.Struct):
    """The part of the payload's `status` answer the check shows (the rest is not read)."""

    disk_free_bytes: Count | None = None
    rss_bytes: Count | None = None
    cpu_temp_c: Finite | None = None
    models: Text | None = None
    models_fault: Text | None = None
    active_slot: Name | None = None


def check_link(board: Board, where: str, link: SerialTransport) -> list[str]:
    """The payload's answers over its link (`ping`, `status`) as report lines."""
    start = time.monotonic()
    pong = link.call("ping")
    rtt = time.monotonic() - start
    status = convert(link.call("status"), LinkStatus, source="the payload's status", error=BoardError, strict=False)
    uptime = pong.get("uptime_s") if isinstance(pong, dict) else None
    lines = [("board", f"{board.name} ({board.origin} profile {board.path})"), ("reached", f"through {where}"),
             ("payload", f"answers in {1000 * rtt:.0f} ms" + (f", up {uptime:.0f} s" if isinstance(uptime, (int, float)) else "")),
             ("arch", "not told: the link runs no command (check over ssh for the rest)"),
             ("models", status.models or f"none: {status.models_fault or 'no models'}"),
             ("active slot", status.active_slot or "none")]
    if status.disk_free_bytes is not None:
        lines.append(("disk free", _gb(status.disk_free_bytes)))
    if status.rss_bytes is not None:
        lines.append(("service rss", f"{status.rss_bytes / 2**20:.0f} MB"))
    if status.cpu_temp_c is not None:
        lines.append(("cpu temp", f"{status.cpu_temp_c:.1f} C"))
    return _aligned(lines)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def report(board: Board, transport_name: str, check: Check) -> list[str]:
    """The check as lines of `label  value`, a value that differs from the profile marked."""
    spec = board.spec

    def differs(value: object, profile: object) -> str:
        return "" if value == profile else f"  (the profile says {profile})"

    lines = [("board", f"{board.name} ({board.origin} profile {board.path})"),
             ("reached", f"through {transport_name}")]
    if spec.emulated:
        lines.append(("emulated", spec.note or "yes: its timings are not the board's"))
    lines.append(("arch", check.arch + differs(check.arch, spec.arch)))
    a = check.answer
    if a is None:
        lines += [("python", f"none: {check.why_no_python}"), ("interpreter", "unknown (no python3)")]
    else:
        minor = ".".join(a.python.split(".")[:2])
        lines += [("python", f"{a.python} ({a.executable})" + differs(minor, spec.python)),
                  ("cores", f"{a.cores}" + differs(a.cores, spec.cores)),
                  ("disk free", f"{_gb(a.disk_free)} of {_gb(a.disk_total)} in {a.cwd}")]
        if a.mem_total is not None and a.mem_available is not None:
            total_mb = a.mem_total / 2**20  # the kernel keeps some back: within a tenth is the same
            lines.append(("memory", f"{_gb(a.mem_available)} available of {_gb(a.mem_total)}"
                          + ("" if abs(total_mb - spec.ram_mb) <= spec.ram_mb / 10
                             else f"  (the profile says {spec.ram_mb} MB)")))
        interp = a.interpreter
        lines.append(("interpreter", f"{interp.module} {interp.version or '(version unknown)'}" if interp
                      else "none (neither ai_edge_litert nor tflite_runtime imports)"))
        d = check.deployed
        if isinstance(d, str):
            lines.append(("deployed", d))
        elif d is not None:
            lines.append(("deployed", f"{d.interpreter.module} {d.interpreter.version or ''}, Python {d.python} "
                          f"({d.executable})" if d.interpreter else f"Python {d.python}, no interpreter imports"))
        tpu = ", ".join(a.edgetpu) if a.edgetpu else "no"
        lines.append(("edge tpu", tpu + ("" if bool(a.edgetpu) == (spec.accelerator != "none")
                                         else f"  (the profile says {spec.accelerator})")))
    return _aligned(lines)


WIDTH = 11  # the longest label's length


def _aligned(lines: list[tuple[str, str]]) -> list[str]:
    return [f"{label:<{WIDTH}}  {value}" for label, value in lines]
