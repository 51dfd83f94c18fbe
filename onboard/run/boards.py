"""Board figures: what a payload computer draws idle and busy, by name or from a profile file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from onboard.errors import BudgetError


@dataclass(frozen=True)
class BoardProfile:
    """What a board draws idle and while inferring. Energy per tile is the extra over idle,
    which the payload pays whether it infers or not."""

    name: str
    idle_watts: float
    busy_watts: float

    def __post_init__(self) -> None:
        if not 0 <= self.idle_watts <= self.busy_watts:
            raise BudgetError(f"board {self.name}: needs 0 <= idle_watts <= busy_watts, got "
                              f"{self.idle_watts} and {self.busy_watts}")

    @classmethod
    def load(cls, path: Path) -> "BoardProfile":
        try:
            body = json.loads(Path(path).read_text())
            return cls(str(body["name"]), float(body["idle_watts"]), float(body["busy_watts"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BudgetError(f"board profile {path} is not JSON with name, idle_watts, busy_watts: {exc}") from None


# Typical figures of boards this runtime targets (whole-board draw at the 5 V input, one
# inference thread busy); a measured profile from `hil` replaces them for a real payload.
BOARDS = {
    "rpi-zero-2w": BoardProfile("rpi-zero-2w", 0.6, 1.6),
    "rpi-4": BoardProfile("rpi-4", 2.7, 4.5),
    "rpi-5": BoardProfile("rpi-5", 3.0, 6.0),
    "coral-dev-board": BoardProfile("coral-dev-board", 2.5, 4.0),
}
