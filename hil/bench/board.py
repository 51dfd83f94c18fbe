"""What a benchmark needs of a board, as small protocols the board profiles satisfy: its name,
arch, cores, accelerator and idle/busy watts, its transport, its power meter, and the command
that starts `orbitlite` on it. `local_board` is this machine, reached by the local transport."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from hil.boards.transport import LocalTransport, Transport

MODELLED = "modelled"  # the meter kind of a board without a power meter


class Meter(Protocol):
    """A power meter on the board's supply. `kind` is MODELLED when there is none, and then
    `watts` is never read."""

    kind: str

    def watts(self) -> float:
        """The board's draw now, in W."""
        ...


class Board(Protocol):
    name: str
    arch: str
    cores: int
    accelerator: str  # none, edgetpu-usb, edgetpu-pcie
    idle_watts: float
    busy_watts: float
    emulated: bool
    meter: Meter
    transport: Transport
    orbitlite: Sequence[str]  # the command that starts orbitlite on the board, as argv


@dataclass(frozen=True)
class ModelledMeter:
    kind: str = MODELLED

    def watts(self) -> float:
        raise NotImplementedError("a modelled meter is never read")


@dataclass
class LocalBoard:
    """This machine as the board. Its watts are a workstation's typical figures, not measured:
    the energy it reports says it is modelled from them."""

    workdir: Path
    name: str = "local"
    arch: str = platform.machine()
    cores: int = os.cpu_count() or 1
    accelerator: str = "none"
    idle_watts: float = 10.0
    busy_watts: float = 25.0
    emulated: bool = False
    meter: Meter = field(default_factory=ModelledMeter)
    orbitlite: Sequence[str] = (sys.executable, "-m", "orbitlite")

    def __post_init__(self) -> None:
        self.transport: Transport = LocalTransport(self.workdir)
