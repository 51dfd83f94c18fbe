"""The drivers a board profile names, opened by kind: `open_transport` (ssh, serial, local) and
`open_meter` (modelled, ina219, ina260, scpi). Each kind is one module, imported only when a
profile uses it, so the harness needs pyvisa only for a SCPI meter and smbus2 only for an INA."""

from __future__ import annotations

import importlib
from pathlib import Path

from hil.boards.meters import PowerMeter
from hil.boards.profile import Board, LocalSpec, SerialSpec, SshSpec, TransportKind, kind
from hil.boards.transport import LocalTransport, Transport
from hil.errors import BoardError, MeterError


def open_transport(board: Board, wanted: TransportKind | None = None) -> Transport:
    """A transport to `board`: its profile's first, or the one of kind `wanted`."""
    spec = board.transport(wanted)
    if isinstance(spec, SshSpec):
        from hil.boards.ssh import SshTransport
        return SshTransport(spec)
    if isinstance(spec, SerialSpec):
        from hil.boards.serial import SerialTransport
        return SerialTransport(spec)
    assert isinstance(spec, LocalSpec), kind(spec)
    return LocalTransport(Path(spec.workdir))


def open_command_transport(board: Board) -> Transport:
    """A transport to `board` that runs commands: the profile's first that is not the serial link."""
    kinds = [k for k in board.transport_kinds() if k != "serial"]
    if not kinds:
        raise BoardError(f"board {board.name} has only a serial link, which runs no command: give its profile an "
                         f"ssh transport")
    return open_transport(board, kinds[0])


def open_meter(board: Board, transport: Transport) -> PowerMeter:
    """The power meter of `board`'s profile (modelled when it names none), ready to read."""
    # the module named like the kind in hil/boards/meters/, with its `open_meter(spec, board, transport)`
    name = kind(board.spec.meter)
    try:
        module = importlib.import_module(f"hil.boards.meters.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in ("pyvisa", "pyvisa_py", "smbus2"):
            raise MeterError(f"the {name} meter needs {exc.name}: pip install 'orbitlite[hil]'") from None
        raise
    return module.open_meter(board.spec.meter, board, transport)
