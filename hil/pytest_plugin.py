"""The pytest plugin of the hardware-in-the-loop tests, registered as the `pytest11` entry point
`orbitlite_hil`, so a payload team's own tests have it as the project's do. In labgrid's spirit
(`--lg-env`), the board is chosen on the command line: `pytest --board PROFILE` runs the HIL tests
against that board (a profile name, hil/boards/profile.py, or a .toml file; `--boards-dir` or
$ORBITLITE_BOARDS for your own). Without `--board` they run against the emulated board
`rpi-emulated`, started when the first test needs it and stopped at the session's end, unless it
was running before.

Session fixtures: `board` (the profile), `board_transport` (its first transport that runs
commands, opened), `board_meter` (its power meter), `emulated_board` (the emulated board's files,
the board started), and `deployed_slot` (the models of `deploy_models`, a fixture a conftest
overrides, deployed as `hil deploy` does). A test that uses a board fixture is marked `hil`; one
marked `needs_edgetpu`, `needs_meter`, `needs_ssh` or `needs_serial` is skipped at collection,
with the reason, on a board without it. The header of the report names the board, and with
--junitxml so do the test suite's properties."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hil.boards.drivers import open_command_transport, open_meter
from hil.boards.meters import PowerMeter
from hil.boards.profile import ENV_VAR, Board, ModelledSpec, find_board
from hil.boards.transport import Transport
from hil.emulated import board as emulated
from hil.emulated.board import Files
from hil.errors import BoardError
from onboard.errors import OrbitliteError

BOARD = pytest.StashKey[Board]()
BOARD_FIXTURES = {"board", "board_transport", "board_meter", "deployed_slot"}

# marker -> (what it needs, why a board lacks it, or None when it has it)
NEEDS: dict[str, tuple[str, Callable[[Board], str | None]]] = {
    "needs_edgetpu": ("an Edge TPU", lambda b: None if b.spec.accelerator != "none" else "accelerator none"),
    "needs_meter": ("a power meter", lambda b: "its power is modelled" if isinstance(b.spec.meter, ModelledSpec)
                    else None),
    "needs_ssh": ("an ssh transport", lambda b: None if "ssh" in b.transport_kinds()
                  else f"transports: {', '.join(b.transport_kinds())}"),
    "needs_serial": ("a serial link", lambda b: None if "serial" in b.transport_kinds()
                     else f"transports: {', '.join(b.transport_kinds())}"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orbitlite-hil", "orbitlite hardware in the loop")
    group.addoption("--board", metavar="PROFILE",
                    help="Run the HIL tests against this board profile (`orbitlite hil boards`: a name or a .toml "
                         f"file) [default: the emulated board {emulated.NAME}, started when a test needs it].")
    group.addoption("--boards-dir", metavar="DIR", type=Path,
                    help=f"A folder of your own board profiles (NAME.toml) [default: ${ENV_VAR}].")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: runs against the board under test (--board, else the emulated board); "
                                       "set on every test that uses a board fixture")
    for name, (what, _) in NEEDS.items():
        config.addinivalue_line("markers", f"{name}: needs {what}; skipped, with the reason, on a board without")
    if config.getoption("board") is not None:
        _board(config)  # a wrong name ends the run now, in one line


def _board(config: pytest.Config) -> Board:
    """The profile of the board under test, read once: --board's, else the emulated board's (read
    only, not started). A profile that is not there or does not read is a usage error."""
    if BOARD not in config.stash:
        try:
            config.stash[BOARD] = find_board(config.getoption("board") or emulated.NAME,
                                             config.getoption("boards_dir"))
        except BoardError as exc:
            raise pytest.UsageError(f"--board: {exc}") from None
    return config.stash[BOARD]


def pytest_report_header(config: pytest.Config) -> str:
    if config.getoption("board") is None:
        return f"board: {emulated.NAME} (emulated, started when a test needs it; --board PROFILE for another)"
    b = _board(config)
    return f"board: {b.name} ({b.spec.arch}{', emulated' if b.spec.emulated else ''})"


@pytest.hookimpl(tryfirst=True)  # before `-m` selects: the `hil` marks set here count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        needs = [m.name for m in item.iter_markers() if m.name in NEEDS]
        if not needs and not BOARD_FIXTURES & set(getattr(item, "fixturenames", ())):
            continue
        item.add_marker(pytest.mark.hil)
        board = _board(config)
        for name in needs:
            what, lacks = NEEDS[name]
            why = lacks(board)
            if why is not None:
                item.add_marker(pytest.mark.skip(reason=f"needs {what}: board {board.name} has none ({why})"))


@pytest.fixture(scope="session", autouse=True)
def _board_properties(request: pytest.FixtureRequest) -> None:
    """With --junitxml, the board under test as properties of the test suite, when it has HIL tests."""
    board = request.config.stash.get(BOARD, None)
    if board is None or not request.config.getoption("xmlpath", None):
        return
    record = request.getfixturevalue("record_testsuite_property")
    record("board", board.name)
    record("board_arch", board.spec.arch)
    record("board_emulated", str(board.spec.emulated).lower())


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A board that cannot be started, reached or deployed to fails the tests that need it with the
    error's one line, not a traceback."""
    try:
        yield
    except OrbitliteError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def emulated_board() -> Iterator[Files]:
    """The emulated board `rpi-emulated`, started as `orbitlite hil emulate up` starts it (built
    first when the cache has none: ~5 min, once per machine; needs root), kept across the session,
    and stopped at its end if the session started it."""
    files = Files.default()
    with _one_line():
        started = emulated.up(files, say=lambda line: print(f"{emulated.NAME}: {line}", file=sys.stderr))
    yield files
    if not started.was_running:
        emulated.down(files)


@pytest.fixture(scope="session")
def board(request: pytest.FixtureRequest) -> Board:
    """The board under test: --board's profile, else the emulated board's, which starts now."""
    if request.config.getoption("board") is None:
        request.getfixturevalue("emulated_board")
    return _board(request.config)


@pytest.fixture(scope="session")
def board_transport(board: Board) -> Iterator[Transport]:
    """The board's first transport that runs commands (ssh or local, as `hil deploy` takes it;
    hil/boards/drivers.py), closed at the session's end."""
    with _one_line():
        transport = open_command_transport(board)
    yield transport
    transport.close()


@pytest.fixture(scope="session")
def board_meter(board: Board, board_transport: Transport) -> Iterator[PowerMeter]:
    """The board's power meter (modelled from its watts when its profile names none)."""
    with _one_line():
        meter = open_meter(board, board_transport)
    yield meter
    meter.close()


@pytest.fixture(scope="session")
def deploy_models() -> list[Path]:
    """The models `deployed_slot` deploys: override it in your conftest.py with a session fixture
    that returns the .tflite files (each with its manifest beside it)."""
    pytest.fail("deployed_slot deploys the models of the fixture deploy_models: override deploy_models in your "
                "conftest.py (a session fixture returning the .tflite files, each with its manifest)", pytrace=False)


@pytest.fixture(scope="session")
def deployed_slot(board: Board, board_transport: Transport, deploy_models: list[Path]) -> Any:
    """The models of `deploy_models` deployed to the board as `hil deploy` does: the deploy's
    result (hil/deploy/deploy.py's `Deployed`), with the slot they went into (`.slot`, "a" or "b")
    and the bundle's id (`.bundle`). The deployment stays on the board, as any deploy's does."""
    # imported when a test deploys, not when pytest loads the plugin in every session
    from hil.deploy.deploy import deploy
    with _one_line():
        return deploy(board, board_transport, [Path(p) for p in deploy_models])
