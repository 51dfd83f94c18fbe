"""The downlink budget simulator: orbit geometry against skyfield, the three modes, config files
and the `orbitlite downlink simulate` command."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from ground.errors import SimulationError
from ground.simulator.config import DEFAULT_ORBIT, Config, ImagingPlan, LinkPlan, PowerPlan, Processing, load_config
from ground.simulator.geometry import Geometry, geometry
from ground.simulator.orbit import Orbit, find_passes, ground_track, tle_checksum
from ground.simulator.payload import run_mode, simulate
from ground.simulator.report import report
from onboard.run.boards import BOARDS, BoardProfile
from onboard.errors import OrbitliteError
from tests.conftest import assert_one_line_error, bench_result, orbitlite

ANY_GROUND = ImagingPlan(over="any")  # no land mask: keeps the in-process tests fast


def _with_raan(orbit: Orbit, raan_deg: float) -> Orbit:
    line2 = f"{orbit.line2[:17]}{raan_deg % 360:8.4f}{orbit.line2[25:68]}"
    return Orbit(orbit.name, orbit.line1, line2 + str(tle_checksum(line2)))


def test_default_orbit_is_sentinel_2_like():
    sat = DEFAULT_ORBIT.satrec
    assert math.degrees(sat.inclo) == pytest.approx(98.57, abs=0.01)
    assert DEFAULT_ORBIT.period_s / 60 == pytest.approx(100.6, abs=0.1)
    _, r, _ = DEFAULT_ORBIT.positions(DEFAULT_ORBIT.epoch, np.arange(0, 6000, 60.0))
    assert np.linalg.norm(r, axis=1).mean() - 6371 == pytest.approx(786, abs=15)
    assert load_config(None).start_time == DEFAULT_ORBIT.epoch


@pytest.mark.parametrize("damage, message", [
    (lambda l1, l2: (l1[:68] + str((int(l1[68]) + 1) % 10), l2), "checksum"),
    (lambda l1, l2: (l1[:60], l2), "69 columns"),
    (lambda l1, l2: (l1, "2 40698" + l2[7:68] + str(tle_checksum("2 40698" + l2[7:]))), "two satellites"),
])
def test_bad_tles_are_refused(damage, message):
    with pytest.raises(SimulationError, match=message):
        Orbit("x", *damage(DEFAULT_ORBIT.line1, DEFAULT_ORBIT.line2))


def test_passes_match_skyfield():
    from skyfield.api import EarthSatellite, load, wgs84

    ts = load.timescale(builtin=True)  # no download
    config = Config()
    start, days = config.start_time, 2
    satellite = EarthSatellite(config.orbit.line1, config.orbit.line2, config.orbit.name, ts)
    ours = find_passes(config.orbit, config.stations, start, days * 86400, config.step_s)
    for station in config.stations:
        site = wgs84.latlon(station.lat_deg, station.lon_deg, elevation_m=station.alt_m)
        times, events = satellite.find_events(site, ts.from_datetime(start), ts.from_datetime(start + timedelta(days=days)),
                                              altitude_degrees=station.min_elevation_deg)
        seconds = np.array([(t.utc_datetime() - start).total_seconds() for t in times])
        peaks = [(satellite - site).at(t).altaz()[0].degrees for t, e in zip(times, events) if e == 1]
        mine = [p for p in ours if p.station == station.name]
        assert len(mine) == (events == 0).sum() == (events == 2).sum() > 10, station.name
        np.testing.assert_allclose([p.aos for p in mine], seconds[events == 0], atol=2.0)
        np.testing.assert_allclose([p.los for p in mine], seconds[events == 2], atol=2.0)
        np.testing.assert_allclose([p.max_elevation_deg for p in mine], peaks, atol=0.05)


def _eclipses(geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths (s) of the eclipses wholly inside the run."""
    lit = geo.illumination > 0.5
    starts = np.flatnonzero(lit[:-1] & ~lit[1:]) + 1
    ends = np.flatnonzero(~lit[:-1] & lit[1:]) + 1
    ends = ends[ends > starts[0]]
    return geo.t[starts[:len(ends)]], (ends - starts[:len(ends)]) * geo.step_s


def test_eclipse_is_plausible_and_once_per_orbit():
    # Sentinel-2's 10:30 orbit at the equinox: a third of each orbit in the Earth's shadow
    config = Config(imaging=ANY_GROUND)
    geo = geometry(config, 1)
    assert 0.30 < geo.eclipse_fraction < 0.36
    starts, lengths = _eclipses(geo)
    period = config.orbit.period_s
    assert len(starts) in (math.floor(86400 / period) - 1, math.floor(86400 / period))
    np.testing.assert_allclose(np.diff(starts), period, atol=2 * config.step_s)
    assert ((lengths > 32 * 60) & (lengths < 36 * 60)).all()
    assert ((geo.illumination > 0) & (geo.illumination < 1)).mean() < 0.01  # penumbra: seconds
    # the same orbit turned to a dawn-dusk one (ascending node at 18:00) sees no eclipse then
    dawn_dusk = replace(config, orbit=_with_raan(config.orbit, math.degrees(config.orbit.satrec.nodeo) - 67.5))
    assert geometry(dawn_dusk, 1).eclipse_fraction == 0


# The hand-written geometry skyfield replaced (Astronomical Almanac Sun, IAU 1982 sidereal time,
# conical shadow of a spherical Earth), for the default orbit's first day on a 1 s grid: the
# seconds of each entry into and exit from the shadow (half the Sun's disc hidden), and the Sun's
# elevation (deg) below the satellite every hour.
OLD_ENTRIES = [4970, 11011, 17053, 23094, 29136, 35177, 41218, 47260, 53301, 59343, 65384, 71426, 77467, 83508]
OLD_EXITS = [943, 6984, 13026, 19068, 25109, 31151, 37192, 43234, 49275, 55317, 61358, 67400, 73441, 79483, 85524]
OLD_SUN_ELEVATION = [-65.652, 45.361, -15.37, -15.912, 46.047, -65.728, 51.237, -22.054, -9.231, 39.895, -63.733, 56.611,
                     -28.675, -2.524, 33.517, -60.084, 61.184, -35.193, 4.195, 26.991, -55.308, 64.509, -41.555, 10.908]


def test_sunlight_from_skyfield_matches_the_old_geometry():
    # Agreed to 1 s and 0.01 deg when measured; 2 s and 0.02 deg leave room for the ephemeris.
    config = Config(imaging=ANY_GROUND)
    t = np.arange(0, 86400, 1.0)
    track = ground_track(config.orbit, config.start_time, t)
    lit = track.sunlit > 0.5
    np.testing.assert_allclose(t[np.flatnonzero(lit[:-1] & ~lit[1:]) + 1], OLD_ENTRIES, atol=2.0)
    np.testing.assert_allclose(t[np.flatnonzero(~lit[:-1] & lit[1:]) + 1], OLD_EXITS, atol=2.0)
    np.testing.assert_allclose(track.sun_elevation_deg[::3600], OLD_SUN_ELEVATION, atol=0.02)
    assert geometry(config, 1).eclipse_fraction == pytest.approx(0.33752, abs=0.0005)  # the old figure at 10 s steps


@pytest.fixture(scope="module")
def uhf_run():
    config = Config(imaging=ANY_GROUND, link=LinkPlan(rate="uhf"), storage_bytes=30_000_000_000)
    return config, simulate(config, 2)


def test_modes_on_uhf(uhf_run):
    config, sim = uhf_run
    raw, products, value = (sim.modes[m] for m in ("raw", "products", "value"))
    captured = len(sim.geometry.captures)
    assert captured == raw.captured > 100
    assert raw.covered == 0 and raw.dropped > 0  # not one 600 MB scene fits through 9.6 kbit/s in 2 days
    assert products.covered >= captured - 4 and products.dropped == 0  # all but the last orbit's
    assert value.covered == products.covered and value.latency_median_s == pytest.approx(products.latency_median_s)
    assert value.extracts_delivered > 0 and value.delivered_bytes > 10 * products.delivered_bytes
    # the link had room for a few extracts after the products: those of the highest-valued scenes
    delivered = np.flatnonzero(~np.isnan(value.extract_at_s))
    assert set(delivered) == set(np.argsort(sim.geometry.values)[-len(delivered):])
    for m in (raw, products, value):
        assert m.series.storage_bytes.max() <= config.storage_bytes
        assert m.min_state_of_charge >= config.power.reserve
        assert m.delivered_bytes <= sim.geometry.capacity.sum() + 1
    assert raw.series.storage_bytes.max() > 0.99 * config.storage_bytes


def test_power_and_storage_limits_hold_when_they_bind():
    # A hungry board on a small battery: processing waits for energy, scenes wait and are dropped.
    config = Config(imaging=ANY_GROUND, link=LinkPlan(rate="uhf"), storage_bytes=20_000_000_000,
                    power=PowerPlan(battery_wh=20, solar_watts=14, platform_watts=5, reserve=0.3),
                    processing=Processing(BoardProfile("hungry", 1.0, 15.0), 150.0))
    sim = simulate(config, 2)
    products = sim.modes["products"]
    assert products.series.waiting_scenes.max() > 10 and products.dropped > 0
    assert products.processed < products.captured - products.dropped
    for m in sim.modes.values():
        assert m.series.state_of_charge.min() >= config.power.reserve - 1e-9
        assert m.series.storage_bytes.max() <= config.storage_bytes
    assert products.min_state_of_charge == pytest.approx(config.power.reserve)  # it ran down to the reserve


def _geometry(captures: int, capacity: dict[int, float], values: list[float]) -> Geometry:
    """A made-up orbit of 20 steps of 10 s, always lit, with captures at the first steps."""
    link = np.zeros(20)
    link[list(capacity)] = list(capacity.values())
    return Geometry(Config().start_time, 10.0, np.arange(20) * 10.0, np.ones(20), [], [], link, np.arange(captures),
                    np.array(values))


def test_drop_policy_keeps_the_scene_at_the_head_and_the_newest():
    # Room for two raw scenes, five captured before the link opens: the oldest (at the head of
    # the queue) stays, and each capture pushes out the one after it.
    config = Config(imaging=ImagingPlan(scene_bytes=100), storage_bytes=250)
    result = run_mode("raw", config, _geometry(5, {19: 1000.0}, [0.1] * 5))
    assert (result.dropped, result.covered) == (3, 2)
    np.testing.assert_array_equal(np.isnan(result.covered_at_s), [False, True, True, True, False])


def test_drop_policy_drops_lowest_value_extracts_first():
    # Scenes are processed at once; their 40-byte extracts fill the store, and each capture
    # needs room for a 100-byte raw scene first.
    config = Config(imaging=ImagingPlan(scene_bytes=100, tiles_per_scene=1, product_bytes=1, extract_bytes=40),
                    storage_bytes=150)
    values = [0.5, 0.9, 0.2, 0.7, 0.1]
    result = run_mode("value", config, _geometry(5, {19: 1000.0}, values))
    assert result.covered == 5 and result.extracts_dropped == 3
    np.testing.assert_array_equal(~np.isnan(result.extract_at_s), [False, True, False, False, True])


def test_same_config_same_result(uhf_run):
    config, sim = uhf_run
    assert report(simulate(config, 2)) == report(sim)


def test_config_files(tmp_path):
    (tmp_path / "bench.json").write_text(bench_result())
    toml = """
step_s = 20
start = "2025-06-21T00:00:00Z"
storage_bytes = 8e9

[orbit]
name = "SENTINEL-2A"
tle = ["%s", "%s"]

[[stations]]
name = "Troll"
lat_deg = -72.01
lon_deg = 2.53
alt_m = 1270
min_elevation_deg = 10

[link]
rate = 2e6
setup_s = 30

[imaging]
scenes_per_orbit = 2
over = "any"

[processing]
board = "rpi-5"
bench = "bench.json"

[power]
battery_wh = 40
""" % (DEFAULT_ORBIT.line1, DEFAULT_ORBIT.line2)
    (tmp_path / "mission.toml").write_text(toml)
    config = load_config(tmp_path / "mission.toml")
    assert config.step_s == 20 and config.storage_bytes == 8_000_000_000 and config.start_time.month == 6
    assert config.stations[0].name == "Troll" and config.link.link.bits_per_second == 2e6
    assert config.processing.tiles_per_s == 14428.0 and config.processing.board == BOARDS["rpi-5"]
    assert "m.tflite" in config.processing.source and config.power.battery_wh == 40
    as_json = {"step_s": 20, "start": "2025-06-21T00:00:00+00:00", "storage_bytes": 8000000000,
               "orbit": {"name": "SENTINEL-2A", "tle": [DEFAULT_ORBIT.line1, DEFAULT_ORBIT.line2]},
               "stations": [{"name": "Troll", "lat_deg": -72.01, "lon_deg": 2.53, "alt_m": 1270, "min_elevation_deg": 10}],
               "link": {"rate": 2e6, "setup_s": 30}, "imaging": {"scenes_per_orbit": 2, "over": "any"},
               "processing": {"board": "rpi-5", "bench": "bench.json"}, "power": {"battery_wh": 40}}
    (tmp_path / "mission.json").write_text(json.dumps(as_json))
    assert load_config(tmp_path / "mission.json") == config


def test_a_bench_result_gives_the_boards_rate_and_watts(tmp_path):
    (tmp_path / "result.json").write_text(bench_result(tiles_per_s=900.0, busy_watts=5.5))
    (tmp_path / "mission.json").write_text('{"processing": {"bench": "result.json"}}')
    processing = load_config(tmp_path / "mission.json").processing
    assert processing.tiles_per_s == 900.0 and processing.board == BoardProfile("rpi-4b", 2.7, 5.5)
    assert processing.source == "hil bench of m.tflite on rpi-4b, invoke alone, modelled watts (result.json)"
    # a result of the old unversioned `hil bench --json` is refused by name
    (tmp_path / "result.json").write_text('{"model": "m.tflite", "batch": 256, "tiles_per_s": 14428.0}')
    with pytest.raises(SimulationError, match=r"processing.bench: bench result .* is not an orbitlite hil-bench"):
        load_config(tmp_path / "mission.json")


@pytest.mark.parametrize("body, message", [
    ('{"imaging": {"scene_size": 5}}', "imaging.scene_size: unknown key"),
    ('{"colour": 1}', "colour: unknown key"),
    ('{"link": {"rate": "laser"}}', "positive rate"),
    ('{"power": {"reserve": 1.5}}', "reserve"),
    ('{"stations": [{"name": "x", "lat_deg": 95, "lon_deg": 0}]}', r"stations\[0\].lat_deg: Expected `float` <= 90.0"),
    ('{"stations": [{"name": "x"}]}', r"stations\[0\].lat_deg: missing"),
    ('{"imaging": {"scene_bytes": "big"}}', "imaging.scene_bytes: Expected `float`, got `str`"),
    ('{"processing": {"board": "cray-1"}}', "not one of"),
    ('{"processing": {"bench": "missing.json"}}', "cannot be read"),
    ('{"orbit": {"tle": ["1 2", "2 3"]}}', "69 columns"),
    ('{"start": "yesterday"}', "start: Invalid RFC3339 encoded datetime"),
    ('[1, 2]', "Expected `object`, got `array`"),
    ('{"step_s": 10,', "not valid JSON"),
])
def test_bad_configs_name_the_fault(tmp_path, body, message):
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(OrbitliteError, match=message):
        load_config(path)


def test_bad_days_are_refused():
    for days in (-1, 0, math.nan, 400):
        with pytest.raises(SimulationError, match="days must be"):
            geometry(Config(), days)


def test_cli_writes_the_report_and_plots(tmp_path):
    result = orbitlite("downlink", "simulate", "--days", "1", "--out", str(tmp_path / "sim"), "--link", "uhf")
    assert result.returncode == 0, result.stderr
    assert "SENTINEL-2A from 2025-03-20 12:00 UTC for 1 d" in result.stdout
    assert "UHF 9.6 kbit/s" in result.stdout
    for mode in ("raw", "products", "value"):
        assert f"\n{mode} " in result.stdout
    body = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert set(body["modes"]) == {"raw", "products", "value"}
    assert body["config"]["link"]["bits_per_second"] == 9600 and body["passes"] and body["contacts"]
    assert body["modes"]["products"]["covered"] > body["modes"]["raw"]["covered"]
    assert len(body["series_t_s"]) == len(body["modes"]["raw"]["series"]["storage_bytes"]) == 144
    for name in ("storage", "delivered", "passes", "power"):
        with Image.open(tmp_path / "sim" / f"{name}.png") as png:
            assert png.format == "PNG" and png.size[0] > 800


def test_cli_bad_input_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("[imaging]\nscenes_per_orbit = \n")
    assert_one_line_error(orbitlite("downlink", "simulate", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o")),
                          "bad.toml: not valid TOML")
    (tmp_path / "unknown.json").write_text('{"imaging": {"tiles": 5}}')
    assert_one_line_error(orbitlite("downlink", "simulate", str(tmp_path / "unknown.json"), "--out", str(tmp_path / "o")),
                          "imaging.tiles: unknown key")
    assert_one_line_error(orbitlite("downlink", "simulate", "--days", "-2", "--out", str(tmp_path / "o")),
                          "days must be more than 0")
    assert not (tmp_path / "o").exists()
