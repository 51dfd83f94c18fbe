"""Training throughput (samples/s) and int8 conversion time of every model family on this
machine, on 32 x 32 x 4 SYNTHETIC tiles. `make bench` prints them; under `make test` each runs
once, as a smoke test of training and converting every family."""

from __future__ import annotations

import time

import pytest

import ground  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from ground.conversion.convert import convert
from ground.pipeline.steps import new_model, split
from ground.datasets.synthetic import generate_patches
from ground.training.train import TrainConfig, fit

ARCHS = ["cnn-s", "cnn-l", "wrn-eca", "mobile", "nas-cell"]


@pytest.fixture(scope="module")
def patches():
    return generate_patches(60, size=32, bands=("B02", "B03", "B04", "B08"), seed=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_bench_training_and_conversion(benchmark, patches, arch):
    train, val, _ = split(patches, 0)
    model, record = new_model(patches, arch, {}, 0, 0)
    entry = fit(model, record, train, val, TrainConfig(epochs=2), stage="bench")
    samples_per_s = entry["epochs"][-1]["samples_per_s"]  # the second epoch: graph built, caches warm

    started = time.perf_counter()
    content = benchmark.pedantic(convert, args=(model, record, train, "int8"), rounds=1, iterations=1)
    seconds = time.perf_counter() - started
    benchmark.extra_info.update(parameters=record.parameters, train_samples_per_s=samples_per_s,
                                int8_conversion_s=round(seconds, 2), int8_bytes=len(content))
    print(f"\n{arch}: {record.parameters} parameters, {samples_per_s:.0f} training samples/s, "
          f"int8 conversion {seconds:.1f} s, {len(content)} bytes")
    assert samples_per_s > 0 and content[4:8] == b"TFL3"
