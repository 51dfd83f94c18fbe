"""Transfer from a trained model's encoder (`ground train --init-from`): a new classifier for
the new classes, the encoder frozen or fine-tuned, another band set refused unless the input
layer is re-learned."""

from __future__ import annotations

import numpy as np
import pytest

from ground.datasets.synthetic import generate_patches
from ground.pipeline.steps import fine_tune_model, train_model
from ground.training.train import TrainConfig
from tests.conftest import assert_one_line_error, orbitlite

pytestmark = pytest.mark.slow
BANDS = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("source")
    patches = generate_patches(15, size=32, bands=BANDS, seed=0)
    model, _, _ = train_model(patches, folder / "source.keras", "cnn-s", {}, TrainConfig(epochs=1))
    return folder / "source.keras", {layer.name: layer.get_weights() for layer in model.layers}


def _changed(model, before: dict) -> dict[str, bool]:
    return {layer.name: not all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), before[layer.name]))
            for layer in model.layers if layer.weights and layer.name in before and layer.name != "classes"}


def test_a_frozen_encoder_keeps_its_weights_and_a_new_classifier_learns_new_classes(source, tmp_path):
    path, before = source
    other = generate_patches(10, size=32, bands=BANDS, seed=5)
    other = other.subset(np.flatnonzero(other.y < 4))  # 4 of the classes: another task
    other = type(other)(other.x, other.y, other.bands, other.classes[:4], "other")
    model, record, entry = fine_tune_model(other, path, tmp_path / "t.keras", TrainConfig(epochs=2), freeze_encoder=True,
                                           relearn_input=False)
    assert model.get_layer("classes").get_weights()[0].shape[-1] == 4 and record.classes == other.classes[:4]
    assert not any(_changed(model, before).values())
    assert entry["stage"] == "fine-tune-frozen-encoder" and entry["config"]["init_from"] == str(path)
    unfrozen, _, _ = fine_tune_model(other, path, tmp_path / "u.keras", TrainConfig(epochs=2), freeze_encoder=False,
                                     relearn_input=False)
    assert all(_changed(unfrozen, before).values())


def test_another_band_set_needs_a_new_input_layer(source, tmp_path):
    path, before = source
    rgb = generate_patches(10, size=32, bands=("B02", "B03", "B04"), seed=1)
    model, record, _ = fine_tune_model(rgb, path, tmp_path / "t.keras", TrainConfig(epochs=1), freeze_encoder=True,
                                       relearn_input=True)
    changed = _changed(model, before)
    assert changed.pop("conv1") and not any(changed.values())  # the new input layer learns, the rest is kept
    assert model.get_layer("conv1").get_weights()[0].shape[2] == 3 and record.bands == rgb.bands
    data = rgb.save(tmp_path / "rgb.npz")
    assert_one_line_error(orbitlite("ground", "train", "--data", str(data), "--out", str(tmp_path / "x.keras"),
                                    "--init-from", str(path)), "--relearn-input")
    assert_one_line_error(orbitlite("ground", "train", "--data", str(data), "--out", str(tmp_path / "x.keras"),
                                    "--freeze-encoder"), "--init-from")
