"""Compression and conversion on the ground: pruning methods, distillation, quantization-aware
training, conversion profiles, the pre-flight report, evaluation, the model card and Pareto plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import ground  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from ground.conversion.convert import PROFILES, write_tflite
from ground.conversion.metrics import average_precision, confusion, mean_average_precision, multilabel_f1, per_class_f1
from ground.datasets.patches import load_patches
from ground.errors import PruningError, TrainingError
from ground.pipeline.steps import distill_model, new_model, qat_model, split
from ground.conversion.preflight import preflight
from ground.training.prune import PruneSpec, measured_sparsity, prune
from ground.training.record import ModelRecord
from ground.tf import keras
from ground.training.train import TrainConfig, load_keras
from onboard.inference.model import load_model
from onboard.inference.tflite_file import read_graph
from tests.conftest import assert_one_line_error, orbitlite


def test_single_label_metrics_on_a_worked_example():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    assert confusion(y, pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 2 fp 1 fn 0 -> 0.8; class 2: tp 1 fp 0 fn 1 -> 2/3
    np.testing.assert_allclose(per_class_f1(y, pred, 3), [0.5, 0.8, 2 / 3])


def test_multi_label_metrics_on_a_worked_example():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], np.uint8)
    scores = np.array([[0.9, 0.2, 0.4], [0.6, 0.7, 0.1], [0.8, 0.3, 0.2], [0.1, 0.1, 0.1]])
    micro, macro, per_class = multilabel_f1(y, scores)
    # predicted: {0}, {0,1}, {0}, {} -> tp 3, fp 1, fn 2
    assert micro == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    np.testing.assert_allclose(per_class, [0.8, 2 / 3, 0.0])
    assert macro == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    # class 0 ranked 0.9(+), 0.8(+), 0.6(-), 0.1(-): AP 1; class 2 ranked 0.4(+) first: AP 1;
    # class 1 ranked 0.7(+), 0.3(+): AP 1
    assert average_precision(y[:, 1], scores[:, 1]) == 1.0
    assert average_precision(np.array([0, 1, 1]), np.array([0.9, 0.5, 0.1])) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert mean_average_precision(y, scores) == 1.0


@pytest.fixture(scope="module")
def data(ground_models):
    patches = load_patches(ground_models["patches"])
    train, val, test = split(patches, 0)
    return patches, train, val, test


def _short(epochs: int = 2) -> TrainConfig:
    return TrainConfig(epochs=epochs, learning_rate=1e-3)


def test_two_of_four_pruning_keeps_two_of_every_four_weights(ground_models, data):
    _, train, val, _ = data
    model, record = load_keras(ground_models["keras"]), ModelRecord.load(ground_models["keras"])
    pruned = prune(model, record, train, val, PruneSpec(method="2:4"), _short())
    kernel = pruned.get_layer("conv2").kernel.numpy()  # 5 x 5 x 8 x 6: groups of 4 along the input channels
    groups = np.moveaxis(kernel, 2, -1).reshape(-1, 4)
    assert ((groups != 0).sum(axis=1) <= 2).all()
    assert record.sparsity == pytest.approx(measured_sparsity(pruned), abs=1e-4) and record.sparsity >= 0.45
    assert record.history[-1]["stage"] == "prune-2:4"


def test_constant_schedule_reaches_its_target(ground_models, data):
    _, train, val, _ = data
    model, record = load_keras(ground_models["keras"]), ModelRecord.load(ground_models["keras"])
    prune(model, record, train, val, PruneSpec(sparsity=0.8, schedule="constant"), _short())
    assert record.sparsity == pytest.approx(0.8, abs=0.02)


def test_xnnpack_pruning_refuses_a_model_its_kernels_cannot_use(ground_models, data):
    _, train, val, _ = data
    model, record = load_keras(ground_models["keras"]), ModelRecord.load(ground_models["keras"])
    with pytest.raises(PruningError, match="cannot be pruned for XNNPACK"):
        prune(model, record, train, val, PruneSpec(method="xnnpack"), _short())


def _xnnpack_shaped_model() -> keras.Model:
    """The shape XNNPACK's sparse path wants: padded 3x3 stride-2 conv on 3 channels, 1x1 convs,
    global average pooling."""
    x = inputs = keras.Input((32, 32, 3))
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="valid", activation="relu")(x)
    x = keras.layers.Conv2D(32, 1, activation="relu")(x)
    x = keras.layers.Conv2D(32, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(6, activation="softmax", name="classes")(x))


def test_xnnpack_pruning_and_preflight_on_an_eligible_model(tmp_path):
    from ground.datasets.synthetic import generate_patches

    patches = generate_patches(30, size=32, bands=("B04", "B03", "B02"), seed=1)
    train, val, test = split(patches, 0)
    _, record = new_model(patches, "cnn-s", {}, 0, 0)
    model = _xnnpack_shaped_model()
    pruned = prune(model, record, train, val, PruneSpec(method="xnnpack", sparsity=0.75, schedule="constant"), _short())
    pointwise = [layer for layer in pruned.layers if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1)]
    assert all(float((layer.kernel.numpy() == 0).mean()) == pytest.approx(0.75, abs=0.02) for layer in pointwise)
    first = [layer for layer in pruned.layers if isinstance(layer, keras.layers.Conv2D)][0]
    assert float((first.kernel.numpy() == 0).mean()) < 0.1, "XNNPACK's dense first layer is left alone"

    fp32 = write_tflite(pruned, record, train, test, tmp_path / "x.tflite", "x", profile="fp32")
    report = preflight((tmp_path / "x.tflite").read_bytes(), "x.tflite")
    assert report.xnnpack_sparse_ok, report.to_markdown()
    assert fp32.input.dtype == "float32"
    int8 = write_tflite(pruned, record, train, test, tmp_path / "q.tflite", "q", profile="int8")
    report = preflight((tmp_path / "q.tflite").read_bytes(), "q.tflite")
    assert not report.xnnpack_sparse_ok
    assert [c.name for c in report.xnnpack_sparse if not c.ok] == ["float model"]
    assert int8.input.dtype == "int8"


def test_conversion_profiles(ground_models, data, tmp_path):
    patches, train, _, test = data
    model, record = load_keras(ground_models["pruned"]), ModelRecord.load(ground_models["pruned"])
    sizes = {}
    for profile in PROFILES:
        m = write_tflite(model, record, train, test, tmp_path / f"{profile}.tflite", profile, profile)
        sizes[profile] = m.size_bytes
        graph = read_graph((tmp_path / f"{profile}.tflite").read_bytes())
        assert m.conversion["profile"] == profile and m.accuracy.agreement > 0.9, profile
        assert m.input.dtype == ("int8" if profile in ("int8", "edgetpu") else "float32"), profile
        assert graph.inputs[0].dynamic == (profile != "edgetpu"), profile
        assert load_model(tmp_path / f"{profile}.tflite").manifest == m
    assert sizes["fp32"] > sizes["fp16"] > sizes["dynamic"] and sizes["fp16"] > sizes["int8"]
    edgetpu = preflight((tmp_path / "edgetpu.tflite").read_bytes())
    assert edgetpu.edgetpu_ok, edgetpu.to_markdown()
    fp32 = preflight((tmp_path / "fp32.tflite").read_bytes())
    assert {c.name for c in fp32.edgetpu if not c.ok} == {"8-bit tensors", "static shapes"}
    fp16 = preflight((tmp_path / "fp16.tflite").read_bytes())
    assert fp16.sparsity == pytest.approx(record.sparsity, abs=0.01), "sparsity is read through DEQUANTIZE"
    assert 0 < edgetpu.gzip_bytes < edgetpu.size_bytes


def test_distillation_trains_a_student(ground_models, data, tmp_path):
    patches = data[0]
    student, record, entry = distill_model(patches, ground_models["keras"], tmp_path / "s.keras",
                                           "cnn-s", {}, TrainConfig(epochs=6, seed=3), temperature=4.0, alpha=0.2)
    assert entry["stage"].startswith("distill-from-zoo-cnn-s-T4")
    epochs = entry["epochs"]
    assert all(np.isfinite(e["loss"]) for e in epochs)
    assert epochs[-1]["loss"] < epochs[0]["loss"] and epochs[-1]["val_accuracy"] > max(0.4, epochs[0]["val_accuracy"])
    reloaded = load_keras(tmp_path / "s.keras")  # a student's custom loss must not stop it reloading
    assert reloaded.count_params() == record.parameters


def test_quantization_aware_training_round_trips_and_converts(ground_models, data, tmp_path):
    patches, train, _, test = data
    with pytest.raises(TrainingError, match=r"\*\.h5"):
        qat_model(patches, ground_models["keras"], tmp_path / "q.keras", _short(1))
    _, record, entry = qat_model(patches, ground_models["keras"], tmp_path / "q.h5", _short(1))
    assert entry["stage"] == "qat"
    qat = load_keras(tmp_path / "q.h5")
    assert any("quant" in layer.name for layer in qat.layers)
    m = write_tflite(qat, record, train, test, tmp_path / "q.tflite", "q", "int8")
    assert m.input.dtype == "int8" and m.accuracy.agreement > 0.9


def test_evaluate_card_and_pareto_through_the_cli(ground_models, tmp_path):
    model = ground_models["tflite"]
    result = orbitlite("ground", "evaluate", "--data", str(ground_models["patches"]), "--model", str(model),
                       "--keras", str(ground_models["pruned"]), "--runs", "30")
    assert result.returncode == 0, result.stderr
    ev = json.loads(open(f"{model}.eval.json").read())
    assert set(ev["metrics"]) == {"accuracy", "macro_f1"} and len(ev["per_class_f1"]) == 6
    assert ev["keras_agreement"] > 0.9 and ev["latency"]["avg_us"] > 0
    assert np.array(ev["confusion"]).sum() == ev["samples"] == 132
    card = open(f"{model}.md").read()
    assert "synthetic" in card and "sha256" in card and "| water |" in card
    result = orbitlite("ground", "pareto", str(model), "--out", str(tmp_path / "p.png"))
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "p.png") as png:
        assert png.size[0] > 500
    assert_one_line_error(orbitlite("ground", "pareto", str(tmp_path / "none.tflite"), "--out", str(tmp_path / "q.png")),
                          "run `orbitlite ground evaluate`")


def test_preflight_command(ground_models, tmp_path):
    result = orbitlite("ground", "preflight", str(ground_models["tflite"]), "--out", str(tmp_path / "r.md"))
    assert result.returncode == 0, result.stderr
    assert "## Edge TPU" in result.stdout and "## XNNPACK sparse inference: not eligible" in result.stdout
    assert "- manifest embedded as TFLite metadata: yes (p)" in result.stdout
    assert (tmp_path / "r.md").read_text() == result.stdout
    (tmp_path / "bad.tflite").write_bytes(b"garbage" * 10)
    assert_one_line_error(orbitlite("ground", "preflight", str(tmp_path / "bad.tflite")), "not a TFLite flatbuffer")


def test_study_compares_every_form_of_a_family(ground_models, tmp_path):
    result = orbitlite("ground", "study", "--data", str(ground_models["patches"]), "--out", str(tmp_path),
                       "--archs", "cnn-s", "--epochs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    table = (tmp_path / "study.md").read_text()
    for form in ("fp32", "int8", "pruned50-int8", "cnn-s-student-int8"):
        assert f"| cnn-s | {form} |" in table
    assert "SYNTHETIC" in table and (tmp_path / "pareto.png").stat().st_size > 10_000
    assert_one_line_error(orbitlite("ground", "study", "--data", str(ground_models["patches"]), "--out",
                                    str(tmp_path), "--archs", "resnet"), "unknown resnet")
