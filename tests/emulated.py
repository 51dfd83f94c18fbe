"""The emulated board `rpi-emulated` for tests that need a flight-like arm64 board: started once
per session through the real `orbitlite hil emulate up` (which builds it first when the cache has
none: ~5 min, once per machine), kept running across the session's tests, stopped at its end.
Import the fixture into a test module (`from tests.emulated import emulated_board`)."""

from __future__ import annotations

import subprocess
from typing import Iterator

import pytest

from hil.emulated.board import Files
from tests.conftest import orbitlite


def on_board(files: Files, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`command` run on the emulated board over SSH, as a user's ssh would."""
    return subprocess.run(files.ssh(*command), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def emulated_board() -> Iterator[Files]:
    result = orbitlite("hil", "emulate", "up")
    assert result.returncode == 0, result.stderr
    yield Files.default()
    result = orbitlite("hil", "emulate", "down")
    assert result.returncode == 0, result.stderr
