"""The errors of the hardware-in-the-loop harness; each ends a command with its one line."""

from __future__ import annotations

from onboard.errors import OrbitliteError


class BoardError(OrbitliteError):
    """A board profile that does not validate, or a board that cannot be reached or used."""


class TransportError(BoardError):
    """A command or a file transfer to or from a board that failed on its way."""


class MeterError(BoardError):
    """A power meter that cannot be opened, does not answer, or answers nonsense."""


class DeployError(BoardError):
    """A deploy or a rollback that stopped at one of its steps; the running slot is unchanged."""
