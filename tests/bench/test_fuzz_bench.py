"""The fuzz tests of the contracts, the configs, the link and the scene readers
(tests/test_fuzz_contracts.py, tests/test_fuzz_configs.py, tests/test_fuzz_link.py,
tests/test_fuzz_scenes.py; the scene fuzzers from a seeded generator rather than Hypothesis's
engine, which would take hours) at 10^5 inputs per reader (ORBITLITE_FUZZ_EXAMPLES, which `make
bench` sets): `make bench` prints how many inputs each reader took and how long it ran. Every input
ends in the reader's own error or a valid result, within the scene fuzzers' time and memory bounds."""

from __future__ import annotations

import pytest

from tests.fuzz import BENCH_EXAMPLES
from tests.test_fuzz_configs import fuzz_board_profile, fuzz_serve_config, fuzz_simulate_config
from tests.test_fuzz_contracts import fuzz_bench_result, fuzz_bundle, fuzz_manifest, fuzz_product
from tests.test_fuzz_link import fuzz_frame_decoder, fuzz_reassembly, fuzz_unseal
from tests.test_fuzz_scenes import fuzz_band_folder, fuzz_geotiff, fuzz_npy, fuzz_raw


# 10^5 inputs per reader: `make bench` alone; `make test` fuzzes each reader in tests/test_fuzz_*.py.
pytestmark = pytest.mark.bench_only


def _fuzz(benchmark, reader: str, run) -> None:
    ran = benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.total
    benchmark.extra_info.update(inputs=ran, inputs_per_s=round(ran / seconds))
    print(f"\n{reader}: {ran:,} fuzzed inputs in {seconds:.0f} s ({ran / seconds:,.0f}/s), none crashed")
    assert ran >= BENCH_EXAMPLES


def test_bench_fuzz_manifest_reader(benchmark, tmp_path):
    _fuzz(benchmark, "manifest (sidecar and embedded copy)", lambda: fuzz_manifest(tmp_path, BENCH_EXAMPLES))


def test_bench_fuzz_product_reader(benchmark):
    _fuzz(benchmark, "product", lambda: fuzz_product(BENCH_EXAMPLES))


def test_bench_fuzz_bundle_reader(benchmark, tmp_path):
    _fuzz(benchmark, "bundle manifest", lambda: fuzz_bundle(tmp_path, BENCH_EXAMPLES))


def test_bench_fuzz_bench_result_reader(benchmark, tmp_path):
    _fuzz(benchmark, "hil bench result", lambda: fuzz_bench_result(tmp_path, BENCH_EXAMPLES))


def test_bench_fuzz_serve_config_reader(benchmark, tmp_path):
    _fuzz(benchmark, "serve config", lambda: fuzz_serve_config(tmp_path, BENCH_EXAMPLES))


def test_bench_fuzz_simulate_config_reader(benchmark, tmp_path):
    _fuzz(benchmark, "simulate config", lambda: fuzz_simulate_config(tmp_path, BENCH_EXAMPLES))


def test_bench_fuzz_board_profile_reader(benchmark, tmp_path):
    _fuzz(benchmark, "board profile", lambda: fuzz_board_profile(tmp_path, BENCH_EXAMPLES))


def test_bench_fuzz_npy_reader(benchmark, tmp_path):
    _fuzz(benchmark, "scene .npy", lambda: fuzz_npy(tmp_path, BENCH_EXAMPLES, fast=True))


def test_bench_fuzz_geotiff_reader(benchmark, tmp_path):
    _fuzz(benchmark, "scene GeoTIFF", lambda: fuzz_geotiff(tmp_path, BENCH_EXAMPLES, fast=True))


def test_bench_fuzz_band_folder_reader(benchmark, tmp_path):
    _fuzz(benchmark, "scene band folder", lambda: fuzz_band_folder(tmp_path, BENCH_EXAMPLES, fast=True))


def test_bench_fuzz_raw_sidecar_reader(benchmark, tmp_path):
    _fuzz(benchmark, "scene raw file and sidecar", lambda: fuzz_raw(tmp_path, BENCH_EXAMPLES, fast=True))


def test_bench_fuzz_frame_decoder(benchmark):
    _fuzz(benchmark, "link frame decoder", lambda: fuzz_frame_decoder(BENCH_EXAMPLES))


def test_bench_fuzz_unseal(benchmark):
    _fuzz(benchmark, "sealed link messages", lambda: fuzz_unseal(BENCH_EXAMPLES))


def test_bench_fuzz_ccsds_reassembly(benchmark):
    _fuzz(benchmark, "CCSDS reassembly", lambda: fuzz_reassembly(BENCH_EXAMPLES))
