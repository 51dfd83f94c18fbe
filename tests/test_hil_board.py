"""The board under test is what its profile says and the harness reaches it: its arch, Python and
Edge TPU as `orbitlite hil boards check` finds them, commands and a userland through its
transport, files there and back whole, and its power read by its meter. HIL tests (the pytest
plugin, hil/pytest_plugin.py): without --board they run on the emulated board, with `--board
PROFILE` on yours (`pytest --board rpi-4b tests/test_hil_*.py -m hil`)."""

from __future__ import annotations

import os
import re

from tests.conftest import orbitlite


def test_the_board_is_what_its_profile_says(board):
    result = orbitlite("hil", "boards", "check", str(board.path))
    assert result.returncode == 0, result.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.stdout.splitlines())
    assert lines["arch"] == board.spec.arch
    assert lines["python"].startswith(board.spec.python + ".") and "the profile says" not in lines["python"]
    assert "the profile says" not in lines["edge tpu"]


def test_its_python_runs_a_userland(board, board_transport):
    done = board_transport.run([board_transport.python, "-c",
                                "import os, platform, sys; os.urandom(8); open('/dev/null', 'w').write('x'); "
                                "print(platform.machine(), '%d.%d' % sys.version_info[:2], "
                                "os.path.exists('/proc/self/fd'))"], timeout=120).check("python")
    assert done.stdout.decode().split() == [board.spec.arch, board.spec.python, "True"]


def test_a_file_goes_to_the_board_and_back_whole(board_transport, tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "sent.bin").write_bytes(data)
    board_transport.put(tmp_path / "sent.bin", "hil-tests/round-trip.bin")
    board_transport.get("hil-tests/round-trip.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data


def test_the_meter_reads_the_boards_power(board, board_meter):
    board_meter.read()
    reading = board_meter.read()
    figures = board.energy()
    if board_meter.modelled:  # the profile's figures over the board's busy time since the last reading
        assert figures.idle_watts <= reading.watts <= figures.busy_watts
    else:
        assert reading.watts > 0
