"""The HIL tests' pytest plugin (hil/pytest_plugin.py), in inner pytest sessions (pytester) as a
payload team's tests would use it: found through its entry point, `--board` choosing the board of
the fixtures, an unknown board a one-line usage error, tests that use a board marked `hil`, a test
needing a feature the board lacks skipped with the reason, the board named in the report's header
and the JUnit XML, and the emulated board started only for a test that needs it."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from hil.boards.profile import SHIPPED

pytest_plugins = ["pytester"]

BOARD_TESTS = """
import pytest

def test_the_board(board, board_transport, board_meter):
    assert board.name == "local" and board_transport.name == "local" and board_meter.modelled
    assert board_transport.run(["echo", "on the board"], timeout=30).stdout == b"on the board\\n"

def test_no_board():
    pass
"""

NEEDS_TESTS = """
import pytest

@pytest.mark.needs_edgetpu
def test_on_the_tpu(board):
    assert board.spec.accelerator != "none"

@pytest.mark.needs_meter
def test_metered(board_meter):
    assert not board_meter.modelled

@pytest.mark.needs_serial
def test_over_the_link(board):
    assert "serial" in board.transport_kinds()
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> pytest.Pytester:
    """An inner session's folder, with the harness's cache of its own and no user profiles."""
    monkeypatch.setenv("ORBITLITE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("ORBITLITE_BOARDS", raising=False)
    return pytester


def test_the_plugin_is_registered_through_its_entry_point():
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "orbitlite_hil"]
    assert plugin.value == "hil.pytest_plugin"


def test_board_local_gives_the_fixtures_of_the_local_board(inner):
    inner.makepyfile(test_inner=BOARD_TESTS)
    result = inner.runpytest("--board", "local", "--strict-markers")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["board: local (x86_64)"])
    # a test that uses a board fixture is a HIL test: `-m hil` picks it, `-m "not hil"` leaves it out
    inner.runpytest("--board", "local", "-m", "hil").assert_outcomes(passed=1, deselected=1)
    inner.runpytest("--board", "local", "-m", "not hil").assert_outcomes(passed=1, deselected=1)


@pytest.mark.parametrize("args, message", [
    (["--board", "cray-1"], "ERROR: --board: no board profile 'cray-1'; known (yours: --boards-dir or "
                            "$ORBITLITE_BOARDS): coral-dev-board, local, rpi-4b, rpi-5, rpi-emulated, rpi-zero-2w"),
    (["--board", "local", "--boards-dir", "absent"], "ERROR: --board: the boards folder absent is not a directory"),
], ids=["unknown", "folder"])
def test_an_unknown_board_is_a_one_line_usage_error(inner, args, message):
    inner.makepyfile(test_inner=BOARD_TESTS)
    result = inner.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line.strip()] == [message]
    assert "Traceback" not in result.stdout.str()


def test_a_test_needing_what_the_board_lacks_is_skipped_with_the_reason(inner):
    inner.makepyfile(test_inner=NEEDS_TESTS)
    result = inner.runpytest("--board", "local", "--strict-markers", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines([
        "SKIPPED * needs an Edge TPU: board local has none (accelerator none)",
        "SKIPPED * needs a power meter: board local has none (its power is modelled)",
        "SKIPPED * needs a serial link: board local has none (transports: local)",
    ], consecutive=False)


def test_a_board_with_the_feature_runs_the_test(inner):
    # your own profile of a machine with a USB Edge TPU and a serial link to the payload
    mine = inner.mkdir("boards")
    profile = (SHIPPED / "local.toml").read_text().replace('name = "local"', 'name = "tpu-box"')
    profile = profile.replace('accelerator = "none"', 'accelerator = "edgetpu-usb"').replace(
        "[meter]", '[[transports]]\nkind = "serial"\nport = "/dev/ttyUSB0"\nkey_file = "link.key"\n\n[meter]')
    (mine / "tpu-box.toml").write_text(profile)
    inner.makepyfile(test_inner=NEEDS_TESTS)
    result = inner.runpytest("--board", "tpu-box", "--boards-dir", str(mine), "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * needs a power meter: board tpu-box has none (its power is modelled)"])


def test_the_board_is_a_property_of_the_junit_test_suite(inner):
    inner.makepyfile(test_inner=BOARD_TESTS)
    inner.runpytest("--board", "local", "--junitxml=report.xml").assert_outcomes(passed=2)
    properties = {p.get("name"): p.get("value") for p in ET.parse(inner.path / "report.xml").iter("property")}
    assert properties == {"board": "local", "board_arch": "x86_64", "board_emulated": "false"}


def test_deployed_slot_asks_for_the_models_to_deploy(inner):
    inner.makepyfile(test_inner="def test_deployed(deployed_slot):\n    pass\n")
    result = inner.runpytest("--board", "local")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*override deploy_models in your conftest.py*"])
    assert "Traceback" not in result.stdout.str()


def test_deployed_slot_deploys_the_models_of_deploy_models(inner, ground_models):
    inner.makeconftest(f"""
import pytest

@pytest.fixture(scope="session")
def deploy_models():
    return [{str(ground_models["tflite"])!r}]
""")
    inner.makepyfile(test_inner="""
import json

def test_deployed(deployed_slot, board_transport):
    assert deployed_slot.slot == "a" and deployed_slot.previous is None and len(deployed_slot.bundle) == 16
    done = board_transport.run([board_transport.python, "payload/supervisor/supervisor.py", "payload", "status"],
                               timeout=60).check("status")
    status = json.loads(done.stdout)
    assert (status["slot"], status["state"]) == ("a", "running")
""")
    payload = Path(os.environ["ORBITLITE_CACHE"]) / "local-board" / "payload"
    try:
        result = inner.runpytest("--board", "local")
    finally:  # the deploy leaves the payload's supervisor running, as on a board
        subprocess.run([sys.executable, str(payload / "supervisor/supervisor.py"), str(payload), "stop"],
                       capture_output=True, timeout=120)
    result.assert_outcomes(passed=1)


def test_without_board_the_emulated_board_starts_only_for_a_test_that_needs_it(inner):
    # in a process of its own, where starting the emulated board fails with a line that says so
    inner.makeconftest("""
import hil.emulated.board

def _up(files, say):
    raise hil.emulated.board.BoardError("the emulated board was asked to start")

hil.emulated.board.up = _up
""")
    inner.makepyfile(test_inner="def test_no_board():\n    pass\n")
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["board: rpi-emulated (emulated, started when a test needs it; *"])
    # what the emulated board lacks is known from its profile, without starting it
    inner.makepyfile(test_inner=NEEDS_TESTS)
    result = inner.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["SKIPPED * needs a serial link: board rpi-emulated has none (transports: ssh)"])
    inner.makepyfile(test_inner=BOARD_TESTS)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the emulated board was asked to start"])
