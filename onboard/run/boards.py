"""Board figures: what a payload computer draws idle and busy, by name or from a profile file."""

from __future__ import annotations

from pathlib import Path

from onboard.errors import BudgetError
from onboard.schema import Name, NonNegative, Schema, decode, read_bounded

MAX_PROFILE_BYTES = 64 * 2**10  # a profile is three keys; anything larger is refused unread


class BoardProfile(Schema, kw_only=False):
    """What a board draws idle and while inferring, in W. Energy per tile is the extra over idle,
    which the payload pays whether it infers or not. A profile file is this as JSON:
    `{"name": "my-board", "idle_watts": 2.1, "busy_watts": 5.0}`."""

    name: Name
    idle_watts: NonNegative
    busy_watts: NonNegative

    def __post_init__(self) -> None:
        if not 0 <= self.idle_watts <= self.busy_watts:
            raise BudgetError(f"board {self.name!r}: needs 0 <= idle_watts <= busy_watts, got "
                              f"{self.idle_watts} and {self.busy_watts}")

    @classmethod
    def load(cls, path: Path) -> "BoardProfile":
        """The profile in the JSON file `path`; BudgetError in one line naming the file and key."""
        source = f"board profile {path}"
        data = read_bounded(Path(path), MAX_PROFILE_BYTES, error=BudgetError, what="board profile")
        try:
            return decode(data, cls, source=source, error=BudgetError)
        except BudgetError as exc:  # idle over busy, raised by __post_init__ without the file's name
            if str(exc).startswith(source):
                raise
            raise BudgetError(f"{source}: {exc}") from None


# Typical figures of boards this runtime targets (whole-board draw at the 5 V input, one
# inference thread busy); a measured profile from `hil` replaces them for a real payload.
BOARDS = {
    "rpi-zero-2w": BoardProfile("rpi-zero-2w", 0.6, 1.6),
    "rpi-4": BoardProfile("rpi-4", 2.7, 4.5),
    "rpi-5": BoardProfile("rpi-5", 3.0, 6.0),
    "coral-dev-board": BoardProfile("coral-dev-board", 2.5, 4.0),
}
