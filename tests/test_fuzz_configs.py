"""Fuzz tests of the config readers: the serve config, the simulate config and the board profile.
Each is fed mutants of a valid file (see tests/fuzz.py) and must end in its own error, in one
line that names the file, or read a valid config. `make bench` runs 10^5 inputs per reader
(tests/bench/test_fuzz_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import example, given

from ground.errors import SimulationError
from ground.simulator.config import DEFAULT_ORBIT, Config
from ground.simulator.config import load_config as load_simulate_config
from onboard.errors import BudgetError, ConfigError
from onboard.run.boards import BoardProfile
from onboard.service.config import ServiceConfig
from onboard.service.config import load_config as load_serve_config
from tests.conftest import bench_result
from tests.fuzz import FUZZ_EXAMPLES, HUGE_INT, INF, NAN, deep, encode, fuzz_settings, mutants

BOARD = {"name": "my-board", "idle_watts": 2.1, "busy_watts": 5.0}
SERVE = {
    "spool": "spool", "bands": ["B02", "B03", "B04", "B08"], "board": "board.json",
    "models": {"ladder": ["cnn-l.tflite", "cnn-s.tflite"], "cascade": "wrn.tflite", "cascade_below": 100,
               "threads": 1, "batch": 64, "interpreter": "auto", "accelerator": "cpu"},
    "store": {"path": "store.db", "capacity_bytes": 50_000_000, "capacity_count": 1000,
              "policy": "drop-lowest-priority-oldest", "resend_after": 600.0, "max_file_bytes": 80_000_000},
    "budget": {"cpu_seconds": 60, "deadline_seconds": 120, "reserve": 0.2, "run_in_eclipse": False},
    "screening": {"nodata_value": 0, "max_nodata": 0.5, "cloud": True, "max_cloud": 0.6,
                  "reflectance_per_dn": 1e-4, "roi": [0, 0, 512, 512], "step": 4},
    "priority": 1, "uncertain_below": 128, "poll_seconds": 5, "telemetry": "telemetry.jsonl",
    "link": {"port": "/dev/ttyAMA0", "baud": 115200, "key_file": "link.key", "state": "link-state.json",
             "budget": "budget.json"},
}
SIMULATE = {
    "start": "2025-06-21T00:00:00Z", "step_s": 20, "storage_bytes": 8e9,
    "orbit": {"name": "SENTINEL-2A", "tle": [DEFAULT_ORBIT.line1, DEFAULT_ORBIT.line2]},
    "stations": [{"name": "Troll", "lat_deg": -72.01, "lon_deg": 2.53, "alt_m": 1270, "min_elevation_deg": 10},
                 {"name": "SvalSat", "lat_deg": 78.23, "lon_deg": 15.39}],
    "link": {"rate": "s-band", "setup_s": 30, "protocol_overhead": 0.14, "transmit_watts": 6},
    "imaging": {"scenes_per_orbit": 2, "over": "any", "min_sun_elevation_deg": 10, "scene_bytes": 600e6,
                "tiles_per_scene": 118336, "product_bytes": 20000, "extract_bytes": 6e6, "seed": 0},
    "processing": {"board": "rpi-5", "bench": "bench.json", "run_in_eclipse": True},
    "power": {"battery_wh": 40, "initial_charge": 1.0, "solar_watts": 30, "platform_watts": 8, "reserve": 0.3},
}


def _with(tree: dict, **changes) -> bytes:
    return encode({**tree, **changes}, "json")


# Cases a hostile tester would try first: deep nesting, huge and non-finite numbers, paths that
# are not paths, keys of the wrong kind.
SERVE_CASES = [
    _with(SERVE, models=deep()), _with(SERVE, priority=HUGE_INT), _with(SERVE, poll_seconds=INF),
    _with(SERVE, poll_seconds=NAN), _with(SERVE, spool="spool\x00"), _with(SERVE, spool="x" * 5000),
    _with(SERVE, board="x" * 300), _with(SERVE, board="."), _with(SERVE, board="/dev/null"),
    _with(SERVE, screening={"roi": [10, 10, 5, 5]}), _with(SERVE, bands=["B02", "B02"]),
    _with(SERVE, models={"ladder": []}), _with(SERVE, store={"path": "s.db", "capacity_bytes": 0}),
    _with(SERVE, budget={"reserve": 1.0}), _with(SERVE, link={"port": "", "key_file": "k"}),
]
SIMULATE_CASES = [
    _with(SIMULATE, stations=deep()), _with(SIMULATE, storage_bytes=HUGE_INT), _with(SIMULATE, step_s=NAN),
    _with(SIMULATE, orbit={"tle": ["1" * 69, "2" * 69]}), _with(SIMULATE, orbit={"tle": ["é" * 69, "é" * 69]}),
    _with(SIMULATE, orbit={"tle": [DEFAULT_ORBIT.line1, DEFAULT_ORBIT.line1]}), _with(SIMULATE, stations=[]),
    _with(SIMULATE, processing={"bench": "x" * 5000}), _with(SIMULATE, processing={"bench": "."}),
    _with(SIMULATE, processing={"idle_watts": 5, "busy_watts": 1}), _with(SIMULATE, link={"rate": "laser"}),
    _with(SIMULATE, link={"rate": -1}), _with(SIMULATE, start="2025-13-01T00:00:00Z"),
    _with(SIMULATE, power={"reserve": 0.5, "initial_charge": 0.2}),
]
BOARD_CASES = [_with(BOARD, idle_watts=INF), _with(BOARD, busy_watts=NAN), _with(BOARD, idle_watts=6.0),
               _with(BOARD, name=deep()), _with(BOARD, name=""), b"[" * 100_000]


def _refused_or_read(read, error: type[Exception], path: Path):
    """`read()`'s result, or None when it refused with `error` in one line naming `path`."""
    try:
        return read()
    except error as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not one line: {exc!r}"
        assert str(path) in message, f"does not name {path}: {message}"
        return None


def serve_folder(tmp_path: Path) -> Path:
    (tmp_path / "spool").mkdir(exist_ok=True)
    (tmp_path / "board.json").write_text(json.dumps(BOARD))
    return tmp_path / "serve.json"


def fuzz_serve_config(tmp_path: Path, examples: int) -> int:
    """Mutants of a serve config (every section present) through `load_config`; returns how many
    inputs ran."""
    path, ran = serve_folder(tmp_path), 0

    @fuzz_settings(examples)
    @given(data=mutants(SERVE, "json"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(data)
        config = _refused_or_read(lambda: load_serve_config(path), ConfigError, path)
        if config is not None:
            assert isinstance(config, ServiceConfig) and config.spool.is_dir() and config.ladder
            assert config.board.idle_watts <= config.board.busy_watts

    for case in SERVE_CASES:
        run = example(data=case)(run)
    run()
    return ran


def simulate_folder(tmp_path: Path) -> Path:
    (tmp_path / "bench.json").write_text(bench_result())
    return tmp_path / "mission.json"


def fuzz_simulate_config(tmp_path: Path, examples: int) -> int:
    """Mutants of a simulate config (every key present) through `load_config`; returns how many
    inputs ran."""
    path, ran = simulate_folder(tmp_path), 0

    @fuzz_settings(examples)
    @given(data=mutants(SIMULATE, "json"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(data)
        config = _refused_or_read(lambda: load_simulate_config(path), SimulationError, path)
        if config is not None:
            assert isinstance(config, Config) and config.stations and 1 <= config.step_s <= 60
            assert config.start_time.tzinfo is not None and config.link.payload_bytes_per_s > 0

    for case in SIMULATE_CASES:
        run = example(data=case)(run)
    run()
    return ran


def fuzz_board_profile(tmp_path: Path, examples: int) -> int:
    """Mutants of a board profile through `BoardProfile.load`; returns how many inputs ran."""
    path, ran = tmp_path / "board.json", 0

    @fuzz_settings(examples)
    @given(data=mutants(BOARD, "json"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(data)
        board = _refused_or_read(lambda: BoardProfile.load(path), BudgetError, path)
        if board is not None:
            assert 0 <= board.idle_watts <= board.busy_watts <= 1e300 and board.name

    for case in BOARD_CASES:
        run = example(data=case)(run)
    run()
    return ran


def test_the_seeds_are_valid(tmp_path):
    """The fuzzers start from files their readers accept, with every key set."""
    path = serve_folder(tmp_path)
    path.write_bytes(encode(SERVE, "json"))
    config = load_serve_config(path)
    assert config.board == BoardProfile("my-board", 2.1, 5.0) and config.screening.roi == (0, 0, 512, 512)
    assert config.link.state == tmp_path / "link-state.json" and not config.budget.run_in_eclipse
    path = simulate_folder(tmp_path)
    path.write_bytes(encode(SIMULATE, "json"))
    config = load_simulate_config(path)
    assert config.processing.tiles_per_s == 14428.0 and len(config.stations) == 2
    (tmp_path / "board.json").write_bytes(encode(BOARD, "json"))
    assert BoardProfile.load(tmp_path / "board.json") == BoardProfile("my-board", 2.1, 5.0)


def test_serve_config_fuzz(tmp_path):
    assert fuzz_serve_config(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_simulate_config_fuzz(tmp_path):
    assert fuzz_simulate_config(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_board_profile_fuzz(tmp_path):
    assert fuzz_board_profile(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES
