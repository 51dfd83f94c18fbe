from __future__ import annotations

import json

from onboard.inference.bench import benchmark
from tests.conftest import assert_one_line_error, orbitlite


def test_benchmark_reports_benchmark_model_fields(ground_models):
    times = iter(range(0, 10_000_000, 7))  # an injected clock: every reading 7 s after the last
    r = benchmark(ground_models["tflite"], batch=4, warmup=2, runs=5, clock=lambda: next(times))
    assert r.batch == 4 and r.count == 5 and r.interpreter == "ai_edge_litert"
    assert r.init_us == 7e6 and r.first_inference_us == 7e6 and r.warmup_avg_us == 7e6
    assert r.min_us == r.max_us == r.avg_us == r.p99_us == 7e6 and r.std_us == 0
    assert r.tiles_per_s == round(4 / 7, 1) and r.peak_rss_mb > 10


def test_hil_bench_command(ground_models, tmp_path):
    result = orbitlite("hil", "bench", "--model", str(ground_models["tflite"]), "--runs", "20", "--batch", "16",
                       "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    assert "Inference timings in us: Init:" in result.stdout and "First inference:" in result.stdout
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["count"] == 20 and r["batch"] == 16
    assert 0 < r["min_us"] <= r["p50_us"] <= r["p90_us"] <= r["max_us"] and r["tiles_per_s"] > 0


def test_hil_bench_of_a_missing_model(tmp_path):
    assert_one_line_error(orbitlite("hil", "bench", "--model", str(tmp_path / "m.tflite")), "not found")
