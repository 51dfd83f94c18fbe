"""`orbitlite hil bench` on the local board through the local transport, with a real model:
benchmark_model's fields and the validity rule, the versioned result read back, the energy's
arithmetic, the report (checked in a real headless browser), `hil compare`, and `orbitlite
downlink simulate` taking the result. No timing is asserted: only what the figures must satisfy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from msgspec.structs import replace

from hil.bench.run import Options, energy, run_bench
from hil.boards.drivers import open_meter
from hil.boards.profile import find_board
from hil.boards.transport import LocalTransport
from onboard.contracts.bench import Rule, read_bench
from onboard.errors import BenchError
from onboard.inference.bench import benchmark, cpu_state, throttling
from tests.conftest import ROOT, assert_one_line_error, orbitlite

PSU_YAML = ROOT / "tests/data/psu.yaml"
FAST = Rule(min_runs=5, min_seconds=0.0, max_seconds=30.0, warmup_runs=1)


def _ticks(step: float):
    times = iter(range(0, 10**9, int(step)))
    return lambda: next(times)


def test_benchmark_reports_benchmark_model_fields(ground_models):
    t, runs = benchmark(ground_models["tflite"], batch=4, rule=Rule(min_runs=5, min_seconds=0, warmup_runs=2),
                        clock=_ticks(7))  # an injected clock: every reading 7 s after the last
    assert t.batch == 4 and t.count == 5 == len(runs) and t.interpreter == "ai_edge_litert"
    assert t.init_us == 7e6 and t.first_inference_us == 7e6 and t.warmup_runs == 2 and t.warmup_avg_us == 7e6
    assert t.min_us == t.max_us == t.avg_us == t.p50_us == t.p99_us == 7e6 and t.std_us == 0
    assert t.seconds == 35 and t.tiles_per_s == round(4 / 7, 1) and t.peak_memory_mb > 10
    assert t.valid and t.not_valid == ()


def test_runs_go_on_until_the_rule_is_met(ground_models):
    t, _ = benchmark(ground_models["tflite"], rule=Rule(min_runs=2, min_seconds=30, max_seconds=100), clock=_ticks(7))
    assert t.count == 5 and t.seconds == 35 and t.valid  # two runs were asked, but 30 s of them


def test_a_broken_rule_is_not_valid_with_the_reason(ground_models):
    t, _ = benchmark(ground_models["tflite"], rule=Rule(min_runs=5, min_seconds=100, max_seconds=20), clock=_ticks(7))
    assert t.count == 3 and not t.valid
    assert t.not_valid == ("3 counted runs, fewer than the 5 the rule asks (stopped at max_seconds 20)",
                           "21 s of counted runs, less than the 100 s the rule asks")


def test_cpu_state_from_sys_and_throttling(tmp_path):
    for cpu, freq in ((0, 1500000), (1, 1300000)):
        d = tmp_path / f"devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{freq}\n")
        (d / "cpuinfo_max_freq").write_text("1800000\n")
    (tmp_path / "class/thermal/thermal_zone0").mkdir(parents=True)
    (tmp_path / "class/thermal/thermal_zone0/temp").write_text("48312\n")
    before = cpu_state(tmp_path)
    assert (before.freq_mhz, before.max_freq_mhz, before.temp_c) == (1400.0, 1800.0, 48.3)
    empty = cpu_state(tmp_path / "nothing")  # a board that shows none of it
    assert (empty.freq_mhz, empty.max_freq_mhz, empty.temp_c) == (None, None, None)
    assert throttling(before, replace(before, freq_mhz=1000.0)) == "CPU frequency fell from 1400 to 1000 MHz"
    assert throttling(before, before) is None and throttling(empty, empty) is None
    assert throttling(before, replace(before, throttled="0x50005")) == "vcgencmd get_throttled=0x50005"


def test_energy_arithmetic():
    e = energy(5.0, 2.0, 4.0, 1000, (32, 32), 10.0, source="modelled", meter="modelled", of="end-to-end")
    assert e.mj_per_tile == pytest.approx(5.0 * 4.0 / 1000 * 1000)  # W x s / tiles, in mJ
    assert e.extra_mj_per_tile == pytest.approx((5.0 - 2.0) * 4.0 / 1000 * 1000)
    assert e.km2_per_tile == pytest.approx(320 * 320 / 1e6)
    assert e.mj_per_km2 == pytest.approx(e.mj_per_tile / e.km2_per_tile)


@pytest.fixture(scope="module")
def bench_out(ground_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    result = orbitlite("hil", "bench", "--model", str(ground_models["tflite"]), "--out", str(out), "--batch", "8",
                       "--batches", "1,8", "--min-runs", "5", "--min-seconds", "0", "--gsd", "20")
    assert result.returncode == 0, result.stderr
    (out / "stdout.txt").write_text(result.stdout)
    return out


def test_hil_bench_on_the_local_board(bench_out, ground_models):
    stdout = (bench_out / "stdout.txt").read_text()
    assert "Inference timings in us: Init:" in stdout and "First inference:" in stdout and "\nvalid\n" in stdout
    r = read_bench(bench_out / "result.json")  # validated against the schema
    m, e = r.measured, r.energy
    assert r.schema == "orbitlite/hil-bench" and r.version == 1 and r.board.name == "local"
    assert r.board.transport == "local" and r.model.sha256 == json.loads(
        Path(str(ground_models["tflite"]) + ".json").read_text())["sha256"]
    assert m.versions.orbitlite and m.versions.numpy and m.versions.interpreter.startswith("ai_edge_litert ")
    assert m.main.batch == 8 and m.main.count >= 5 and len(m.latencies_us) == m.main.count and m.valid
    assert 0 < m.main.min_us <= m.main.p50_us <= m.main.p90_us <= m.main.p99_us <= m.main.max_us
    assert [t.threads for t in m.threads_sweep] == list(range(1, r.board.cores + 1))
    assert [t.batch for t in m.batch_sweep] == [1, 8]
    # onboard run on the 150 x 150 px scene shipped with the bench: 5 x 5 tiles of 32 px, the grid covering it
    assert m.end_to_end.tiles == 25 and m.end_to_end.tiles_per_s > 0 and m.end_to_end.peak_rss_mb > 10
    # modelled energy: the profile's busy watts over the end-to-end run's busy time
    assert e.source == "modelled" and e.of == "end-to-end" and e.busy_watts == r.board.busy_watts
    assert e.busy_seconds == m.end_to_end.seconds and e.tiles == 25
    assert e.mj_per_tile == pytest.approx(e.busy_watts * e.busy_seconds / e.tiles * 1000)
    assert r.model.tile == (32, 32) and e.gsd_m == 20 and e.km2_per_tile == pytest.approx((32 * 20) ** 2 / 1e6)
    assert e.mj_per_km2 == pytest.approx(e.mj_per_tile / e.km2_per_tile)
    assert {p.name for p in bench_out.iterdir()} >= {"result.json", "report.md", "report.html", "latency.png",
                                                     "threads.png", "energy.png"}
    assert "MODELLED from the profile" in (bench_out / "report.md").read_text()


def test_energy_from_the_boards_meter(ground_models, tmp_path):
    # a board of one core whose supply is pyvisa-sim's SIMULATED SCPI instrument (5.10 V x 0.90 A):
    # the bench reads it through the real pyvisa + meter driver while the board-side bench runs
    shutil.copy(PSU_YAML, tmp_path / "psu.yaml")
    profile = (ROOT / "hil/boards/profiles/local.toml").read_text().replace("cores = 2", "cores = 1")
    profile = profile.replace('kind = "modelled"', 'kind = "scpi"\nresource = "TCPIP::psu.sim::INSTR"\n'
                                                   'backend = "psu.yaml@sim"')
    (tmp_path / "local.toml").write_text(profile)
    board = find_board("local", tmp_path)
    transport = LocalTransport(tmp_path / "board")
    meter = open_meter(board, transport)
    r = run_bench(board, transport, meter, ground_models["tflite"],
                  Options(batch=4, batches=(4,), rule=FAST, scene=None))
    assert r.energy.source == "meter" and r.energy.meter.startswith("scpi supply TCPIP::psu.sim::INSTR")
    assert r.energy.busy_watts == pytest.approx(5.10 * 0.90) and r.board.meter == "scpi"
    assert r.measured.end_to_end is None and r.energy.of == "invoke" and len(r.measured.threads_sweep) == 1
    assert r.energy.tiles == r.measured.main.count * 4 and r.energy.busy_seconds == r.measured.main.seconds
    assert r.energy.mj_per_tile == pytest.approx(r.energy.busy_watts * r.energy.busy_seconds / r.energy.tiles * 1000)


def test_a_bench_that_breaks_its_rule_says_not_valid(ground_models, tmp_path):
    # a million runs cannot fit in 50 ms: the measurements stop short of the rule
    result = orbitlite("hil", "bench", "--model", str(ground_models["tflite"]), "--out", str(tmp_path),
                       "--batches", "1", "--min-runs", "1000000", "--max-seconds", "0.05", "--min-seconds", "0")
    assert result.returncode == 0, result.stderr
    assert "not valid: threads 1 batch 256:" in result.stdout and "fewer than the 1000000 the rule asks" in result.stdout
    r = read_bench(tmp_path / "result.json")
    assert not r.measured.valid and not r.measured.main.valid
    assert "NOT VALID" in (tmp_path / "report.md").read_text()


def test_the_html_report_in_a_headless_browser(bench_out):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromedriver, chromium = Path("/usr/bin/chromedriver"), Path("/usr/bin/chromium")
    assert chromedriver.exists() and chromium.exists(), "install chromium and chromium-driver: make system"
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(chromedriver)), options=options)
    try:
        driver.get((bench_out / "report.html").resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.src.slice(0, 22)])")
        text = driver.find_element("tag name", "body").text
    finally:
        driver.quit()
    assert sorted(alt for alt, *_ in images) == ["energy", "latency", "threads"]
    assert all(done and width > 0 and src == "data:image/png;base64," for _, done, width, src in images), images
    r = read_bench(bench_out / "result.json")
    for figure in (f"{r.energy.mj_per_tile:.4g} mJ/tile", f"p50={r.measured.main.p50_us:.1f}",
                   f"{r.measured.end_to_end.tiles_per_s:.1f} tiles/s", r.model.sha256):
        assert figure in text, figure


def test_hil_compare(bench_out, tmp_path):
    other = json.loads((bench_out / "result.json").read_text())
    other["board"]["name"] = "rpi-emulated"
    other["energy"]["mj_per_tile"] = 1.25
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = orbitlite("hil", "compare", str(bench_out / "result.json"), str(tmp_path / "other.json"),
                       "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "result", "board", "model"]
    assert lines[1].split()[2] == "local" and lines[2].split()[2] == "rpi-emulated" and " 1.25 " in lines[2]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0 and "rpi-emulated" in (
        tmp_path / "cmp" / "compare.md").read_text()


@pytest.mark.parametrize("body, message", [
    ("{", "is not readable JSON"),
    ('{"schema": "orbitlite/model-manifest", "version": 1}', "is not an orbitlite hil-bench result"),
    ('{"schema": "orbitlite/hil-bench", "version": 2}', "has orbitlite hil-bench result version 2"),
])
def test_a_bad_result_file_is_one_line(tmp_path, body, message):
    (tmp_path / "r.json").write_text(body)
    assert_one_line_error(orbitlite("hil", "compare", str(tmp_path / "r.json")), message)


def test_a_result_that_breaks_the_schema_is_one_line(bench_out, tmp_path):
    r = json.loads((bench_out / "result.json").read_text())
    r["measured"]["main"]["p50_us"] = r["measured"]["main"]["max_us"] + 1
    (tmp_path / "r.json").write_text(json.dumps(r))
    assert_one_line_error(orbitlite("hil", "compare", str(tmp_path / "r.json")),
                          "measured.main: needs min_us <= p50_us")
    with pytest.raises(BenchError, match="is malformed"):
        read_bench(tmp_path / "r.json")


def test_downlink_simulate_takes_a_bench_result(bench_out, tmp_path):
    r = read_bench(bench_out / "result.json")
    result = orbitlite("downlink", "simulate", "--days", "0.1", "--out", str(tmp_path), "--bench",
                       str(bench_out / "result.json"))
    assert result.returncode == 0, result.stderr
    assert f"local at {r.measured.end_to_end.tiles_per_s:g} tiles/s (hil bench of " in result.stdout
    config = json.loads((tmp_path / "simulation.json").read_text())["config"]["processing"]
    assert config["board"]["busy_watts"] == r.energy.busy_watts and config["tiles_per_s"] == r.tiles_per_s
    (tmp_path / "bad.json").write_text('{"schema": "orbitlite/hil-bench", "version": 1}')
    assert_one_line_error(orbitlite("downlink", "simulate", "--days", "0.1", "--out", str(tmp_path), "--bench",
                                    str(tmp_path / "bad.json")), "--bench: bench result", "created: missing")


def test_hil_bench_of_a_missing_model(tmp_path):
    assert_one_line_error(orbitlite("hil", "bench", "--model", str(tmp_path / "m.tflite"), "--out", str(tmp_path)),
                          "not found")


def test_hil_bench_of_an_unknown_board(tmp_path):
    assert_one_line_error(orbitlite("hil", "bench", "--board", "cray-1", "--model", "m.tflite", "--out",
                                    str(tmp_path)), "no board profile 'cray-1'; known", "rpi-emulated")


def test_cpu_against_edge_tpu_needs_a_board_with_one_and_a_model_compiled_for_it(ground_models, tmp_path):
    model = str(ground_models["tflite"])
    assert_one_line_error(orbitlite("hil", "bench", "--model", model, "--edgetpu-model", model, "--out",
                                    str(tmp_path / "out")), "board local has no Edge TPU")
    profile = (ROOT / "hil/boards/profiles/local.toml").read_text().replace('accelerator = "none"',
                                                                           'accelerator = "edgetpu-usb"')
    assert 'accelerator = "edgetpu-usb"' in profile
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "local.toml").write_text(profile)
    assert_one_line_error(orbitlite("hil", "bench", "--boards-dir", str(tmp_path / "boards"), "--model", model,
                                    "--edgetpu-model", model, "--out", str(tmp_path / "out"), "--batches", "1",
                                    "--min-runs", "2", "--min-seconds", "0"),
                          "is compiled for cpu, not for the Edge TPU")
