"""Board figures: what a payload computer draws idle and busy, by name or from a profile file."""

from __future__ import annotations

from pathlib import Path

from onboard.errors import BudgetError
from onboard.schema import Name, NonNegative, Schema, decode, read_bounded

MAX_PROFILE_BYTES = 64 * 2**10  # a profile is three keys; anything larger is refused unread


class BoardProfile(Schema, kw_only=False):
    """What a board draws idle and with every core busy, in W, at its supply input. Energy per
    tile is the extra over idle, which the payload pays whether it infers or not. A profile file
    is this as JSON:
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


# The figures of the boards this runtime targets: whole-board draw at the 5 V input, idle and with
# every core busy (a stress test's figure, the one boards publish). The budgets charge busy - idle
# for every second of inference, an upper bound when the interpreter keeps fewer cores busy: a
# power budget errs on the battery's side. The one source of these figures: the harness's board
# profiles name theirs here (`watts_of` in hil/boards/profiles/*.toml); a profile with a power
# meter's figures, or one measured for a real payload, replaces them.
BOARDS = {board.name: board for board in (
    BoardProfile("rpi-zero-2w", 0.6, 3.0),  # published idle; busy (all four cores) an estimate
    BoardProfile("rpi-4b", 2.7, 6.4),  # published: idle, and all four cores under stress
    BoardProfile("rpi-5", 3.0, 11.0),  # published: full load; idle an estimate
    # estimates, not datasheet figures (a 5 V 2-3 A supply; the Edge TPU is rated 4 TOPS at 2 W)
    BoardProfile("coral-dev-board", 3.0, 6.0),
)}
