"""How faithfully each family's int8 TFLite model decides like its own Keras model, on the held-out
split of SYNTHETIC 32 x 32 x 4 tiles, after a few epochs and after a longer schedule. The TFLite
figures come through the on-board runtime (ground.conversion.convert.write_tflite), as in every manifest.
`make bench` prints the table (tests/bench/conftest.py); it trains five families twice, so it
runs only there.

Agreement is asserted over every tile, also after 3 epochs, when the Keras model still hesitates
between some classes: a tile counts as undecided where its top two probabilities lie within
UNDECIDED of each other, reported to show how much of the agreement rests on near ties (the
int8 logits resolve steps of about 0.04 logit)"""

from __future__ import annotations

import numpy as np
import pytest

import ground  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from ground.conversion.convert import tflite_scores, write_tflite
from ground.pipeline.steps import new_model, split
from ground.datasets.synthetic import generate_patches
from ground.training.train import TrainConfig, fit, predict
from tests.bench.conftest import INT8_ROWS

ARCHS = ["cnn-s", "cnn-l", "wrn-eca", "mobile", "nas-cell"]
EPOCHS = [3, 10]
AGREEMENT = 0.98
UNDECIDED = 0.02  # top-1 minus top-2 probability of the Keras model


@pytest.fixture(scope="module")
def patches():
    return generate_patches(200, size=32, bands=("B02", "B03", "B04", "B08"), seed=0)


@pytest.mark.bench_only  # trains every family twice: `make bench` alone
@pytest.mark.parametrize("epochs", EPOCHS)
@pytest.mark.parametrize("arch", ARCHS)
def test_bench_int8_agrees_with_its_keras_model(benchmark, request, patches, tmp_path, arch, epochs):
    train, val, test = split(patches, 0)

    def train_and_convert():
        model, record = new_model(patches, arch, {}, 0, 0)
        fit(model, record, train, val, TrainConfig(epochs=epochs), stage="train")
        return model, record, write_tflite(model, record, train, test, tmp_path / f"{arch}.tflite", arch)

    model, record, manifest = benchmark.pedantic(train_and_convert, rounds=1, iterations=1)
    keras_scores, lite_scores = predict(model, record, test), tflite_scores(tmp_path / f"{arch}.tflite", test)
    top2 = np.sort(keras_scores, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] >= UNDECIDED
    same = keras_scores.argmax(axis=1) == lite_scores.argmax(axis=1)
    decided_agreement = float(same[decided].mean())
    acc = manifest.accuracy
    assert acc.agreement == pytest.approx(same.mean(), abs=1e-4)
    row = {"family": arch, "epochs": epochs, "tiles": len(test), "keras": acc.keras, "tflite": acc.tflite,
           "agreement": acc.agreement, "undecided": round(float(1 - decided.mean()), 4),
           "decided_agreement": round(decided_agreement, 4)}
    request.config.stash.setdefault(INT8_ROWS, []).append(row)
    benchmark.extra_info.update(row)
    assert acc.agreement >= AGREEMENT
