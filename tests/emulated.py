"""Commands on the emulated board `rpi-emulated`, for the tests of `orbitlite hil emulate`. The board
itself is the `emulated_board` fixture of the HIL tests' pytest plugin (hil/pytest_plugin.py):
started once per session when a test asks for it, stopped at the session's end."""

from __future__ import annotations

import subprocess

from hil.emulated.board import Files


def on_board(files: Files, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`command` run on the emulated board over SSH, as a user's ssh would."""
    return subprocess.run(files.ssh(*command), capture_output=True, text=True, timeout=timeout)
