"""The architecture families: sizes, heads, scaling, cell validation, and full-integer int8
conversion through the project's converter into LiteRT and onto the Edge TPU's op list."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ground  # noqa: F401  (selects tf-keras before TensorFlow is imported)
from ai_edge_litert.interpreter import Interpreter
from ground.conversion.convert import convert
from ground.datasets.patches import PatchSet
from ground.training.record import ModelRecord
from ground.tf import keras
from ground.training.train import normalize
from models import FAMILIES
from models.edgetpu import EDGETPU_OPS, check_edgetpu
from models.mobile import MobileConfig, build_mobile
from models.nas_cell import (CONV1X1, CONV3X3, EXAMPLE_MATRIX, EXAMPLE_OPS, INPUT, MAXPOOL3X3, OUTPUT, Cell,
                             NasCellConfig, build_nas_cell, prune_cell, vertex_channels)
from models.wrn_eca import Scaling, WrnEcaConfig, build_wrn_eca, compound_scaling, eca_kernel_size
from tests.test_without_tensorflow import BLOCKER

SMALL = (32, 32, 4)  # EuroSAT-like tiles in the demo's four 10 m bands
LARGE = (64, 64, 12)  # BigEarthNet-like tiles in twelve bands

# A cell whose output is fed by three vertices (16 channels split 6, 5, 5, so vertex 1's output
# is cut to 5 channels for vertex 2), with every op, and the input added to the output.
TRUNCATING_MATRIX = (
    (0, 1, 1, 1, 1),
    (0, 0, 1, 0, 1),
    (0, 0, 0, 0, 1),
    (0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0),
)
TRUNCATING_OPS = (INPUT, CONV3X3, MAXPOOL3X3, CONV1X1, OUTPUT)

# Small configs of each family for the conversion tests (conversion time grows with layer count);
# together they still contain every kind of block the defaults have.
SMALL_CONFIGS = {
    "zoo-cnn": {},
    "wrn-eca": {"width": 1.0},
    "mobile": {"blocks": ((1, 16, 1, 1), (6, 24, 2, 2))},
    "nas-cell": {"matrix": TRUNCATING_MATRIX, "ops": TRUNCATING_OPS, "stacks": 2},
}


def build(family: str, shape=SMALL, n_classes: int = 10, head: str = "softmax", **config) -> keras.Model:
    f = FAMILIES[family]
    return f.build(shape, n_classes, f.config(**config), head=head)


def calibration(shape, n_classes: int, n: int = 16) -> tuple[PatchSet, ModelRecord]:
    """Uniform noise in reflectance units as the representative set, and a record normalizing it."""
    x = np.random.default_rng(0).integers(0, 10_000, size=(n, *shape)).astype(np.uint16)
    bands, classes = tuple(f"b{i}" for i in range(shape[-1])), tuple(f"c{i}" for i in range(n_classes))
    patches = PatchSet(x, np.arange(n) % n_classes, bands, classes, "synthetic: uniform noise")
    flat = x.reshape(-1, shape[-1]).astype(np.float64)
    record = ModelRecord("test", bands, classes, tuple(flat.mean(0)), tuple(flat.std(0)), 0, patches.source, 0)
    return patches, record


def to_tflite(model: keras.Model, profile: str = "int8") -> bytes:
    patches, record = calibration(model.input_shape[1:], model.output_shape[-1])
    return convert(model, record, patches, profile)


def sharpen(model: keras.Model, x: np.ndarray) -> None:
    """Scale the classifier so that an untrained model's outputs differ clearly from tile to tile
    (its softmax is otherwise near uniform), which makes comparing two models' outputs telling."""
    head = model.get_layer("classes")
    kernel, bias = head.get_weights()
    logits = keras.Model(model.input, head.input)(x, training=False).numpy() @ kernel
    scale = 3.0 / (logits - logits.mean(axis=0)).std()
    head.set_weights([kernel * scale, -logits.mean(axis=0) * scale])


def run_tflite(content: bytes, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the int8 model for float inputs `x`, one tile at a time."""
    interp = Interpreter(model_content=content)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    rows = []
    for tile in x:
        q = np.clip(np.round(tile / in_scale + in_zero), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q[None])
        interp.invoke()
        rows.append((interp.get_tensor(out["index"])[0].astype(np.float32) - out_zero) * out_scale)
    return np.stack(rows)


def test_registry_names_every_family_with_a_frozen_config():
    assert set(FAMILIES) == {"zoo-cnn", "wrn-eca", "mobile", "nas-cell"}
    for family in FAMILIES.values():
        config = family.config()
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.seed = 1
        assert callable(family.build)


@pytest.mark.parametrize("family, low, high", [
    ("zoo-cnn", 10_000, 12_000),
    ("wrn-eca", 200_000, 400_000),
    ("mobile", 50_000, 150_000),
    ("nas-cell", 10_000, 50_000),
])
def test_default_parameter_counts_are_cpu_sized(family, low, high):
    assert low <= build(family).count_params() <= high


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("head, shape, n_classes", [("softmax", SMALL, 6), ("sigmoid", LARGE, 19)])
def test_forward_pass_shapes_and_heads(family, head, shape, n_classes):
    model = build(family, shape, n_classes, head)
    x = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    y = model(x, training=False).numpy()
    assert model.input_shape == (None, *shape)
    assert y.shape == (3, n_classes)
    assert model.get_layer("classes").activation.__name__ == head
    assert ((y > 0) & (y < 1)).all()
    if head == "softmax":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    else:  # independent yes/no per class, not a distribution
        assert (np.abs(y.sum(axis=1) - 1.0) > 0.5).all()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("shape, n_classes, head, fragment", [
    (SMALL, 10, "relu", "unknown head"),
    (SMALL, 1, "softmax", "use sigmoid"),
    ((32, 32), 10, "softmax", "(rows, cols, bands)"),
])
def test_builders_reject_a_bad_task(family, shape, n_classes, head, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        build(family, shape, n_classes, head)


# --- WRN-ECA ------------------------------------------------------------------------------------

def test_phi_zero_is_the_wrn_b0_baseline():
    scaling = compound_scaling(WrnEcaConfig())
    assert scaling == Scaling(depth=10, width=2.0, resolution=32)
    assert (scaling.blocks, scaling.channels) == (1, (32, 64, 128))


def test_compound_scaling_grows_depth_width_and_resolution_with_phi():
    scalings = [compound_scaling(WrnEcaConfig(phi=phi)) for phi in range(5)]
    depths, widths, sides = ([getattr(s, a) for s in scalings] for a in ("depth", "width", "resolution"))
    assert depths == sorted(depths) and depths[-1] > depths[1] > depths[0]  # whole blocks: steps, not a ramp
    assert all(a < b for a, b in zip(widths, widths[1:]))
    assert all(a < b for a, b in zip(sides, sides[1:])) and all(s % 4 == 0 for s in sides)
    params = [build_wrn_eca((s.resolution, s.resolution, 4), 10, WrnEcaConfig(phi=phi)).count_params()
              for phi, s in enumerate(scalings[:4])]
    assert all(a < b for a, b in zip(params, params[1:]))


@pytest.mark.parametrize("channels, k", [(16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_kernel_size_follows_the_paper(channels, k):
    assert eca_kernel_size(channels) == k


def test_every_residual_block_has_eca_with_its_adaptive_kernel():
    model = build_wrn_eca(SMALL, 10, WrnEcaConfig(phi=1))
    eca = [layer for layer in model.layers if layer.name.endswith("_eca_conv")]
    assert len(eca) == 3 * compound_scaling(WrnEcaConfig(phi=1)).blocks
    for layer in eca:
        channels = layer.input_shape[1]
        assert layer.kernel_size == (eca_kernel_size(channels),)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"depth": 11}, "6n \\+ 4"), ({"phi": -1}, "phi"), ({"alpha": 0.9}, "alpha, beta and gamma"),
    ({"width": 0}, "width"), ({"dropout": 1.0}, "dropout"),
])
def test_wrn_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        WrnEcaConfig(**kwargs)


# --- mobile -------------------------------------------------------------------------------------

def test_mobile_layers_are_edgetpu_friendly_kinds():
    model = build_mobile(SMALL, 10)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert kinds == {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
                     "GlobalAveragePooling2D", "Dense"}
    assert all(layer.max_value == 6 for layer in model.layers if isinstance(layer, keras.layers.ReLU))


def test_width_multiplier_scales_channels():
    models = [build_mobile(SMALL, 10, MobileConfig(width=w)) for w in (0.5, 1.0, 1.5)]
    params = [m.count_params() for m in models]
    assert [m.get_layer("stem").filters for m in models] == [8, 16, 24]
    assert params == sorted(params) and len(set(params)) == 3


@pytest.mark.parametrize("kwargs, fragment", [
    ({"width": 0}, "width"), ({"blocks": ()}, "blocks is empty"), ({"blocks": ((6, 24, 2, 3),)}, "stride 1 or 2"),
])
def test_mobile_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        MobileConfig(**kwargs)


# --- NAS cells ----------------------------------------------------------------------------------

def _replace(matrix, i, j, value):
    rows = [list(r) for r in matrix]
    rows[i][j] = value
    return rows


@pytest.mark.parametrize("matrix, ops, fragment", [
    ([[0, 1, 0], [0, 0, 1]], (INPUT, CONV3X3, OUTPUT), "square"),
    ([[0] * 8 for _ in range(8)], (INPUT, *[CONV3X3] * 6, OUTPUT), "8 vertices"),
    (_replace(EXAMPLE_MATRIX, 0, 1, 2), EXAMPLE_OPS, "0 or 1"),
    (_replace(EXAMPLE_MATRIX, 4, 2, 1), EXAMPLE_OPS, r"entry \[4, 2\]"),
    (_replace(EXAMPLE_MATRIX, 3, 3, 1), EXAMPLE_OPS, r"entry \[3, 3\]"),
    (EXAMPLE_MATRIX, EXAMPLE_OPS[:-1], "one op per vertex"),
    (EXAMPLE_MATRIX, (CONV3X3, *EXAMPLE_OPS[1:]), "must start with 'input'"),
    (EXAMPLE_MATRIX, (*EXAMPLE_OPS[:2], "conv5x5-bn-relu", *EXAMPLE_OPS[3:]),
     "unknown op 'conv5x5-bn-relu' at vertex 2"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], (INPUT, CONV3X3, OUTPUT), "no path from input to output"),
    (_replace(EXAMPLE_MATRIX, 1, 2, 1), EXAMPLE_OPS, "10 edges"),
])
def test_cell_validation_names_the_broken_rule(matrix, ops, fragment):
    with pytest.raises(ValueError, match=fragment):
        prune_cell(matrix, ops)
    with pytest.raises(ValueError, match=fragment):
        NasCellConfig(matrix=matrix, ops=ops)


def test_vertices_off_the_input_output_path_are_pruned():
    # Vertex 2 is never reached from the input, vertex 3 never reaches the output.
    matrix = ((0, 1, 0, 1, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 1), (0, 0, 0, 0, 0), (0, 0, 0, 0, 0))
    ops = (INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT)
    pruned = prune_cell(matrix, ops)
    assert pruned == Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), (INPUT, CONV3X3, OUTPUT))
    full = build_nas_cell(SMALL, 10, NasCellConfig(matrix=matrix, ops=ops))
    same = build_nas_cell(SMALL, 10, NasCellConfig(matrix=pruned.matrix, ops=pruned.ops))
    assert full.count_params() == same.count_params()


def test_channels_are_split_as_in_nas_bench_101():
    assert vertex_channels(16, 64, EXAMPLE_MATRIX) == [16, 16, 16, 16, 16, 16, 64]
    assert vertex_channels(16, 16, TRUNCATING_MATRIX) == [16, 6, 5, 5, 16]
    assert vertex_channels(8, 32, ((0, 1), (0, 0))) == [8, 32]


def test_cell_concatenates_truncates_and_adds_the_projected_input():
    model = build_nas_cell(SMALL, 10, NasCellConfig(matrix=TRUNCATING_MATRIX, ops=TRUNCATING_OPS))
    concat = model.get_layer("stack1_cell1_concat")
    assert [t.shape[-1] for t in concat.input] == [6, 5, 5]
    assert model.get_layer("stack1_cell1_residual").output.shape[-1] == 16
    assert model.get_layer("stack3_cell1_concat").output.shape[1:] == (8, 8, 64)


def test_input_straight_to_output_is_a_projection():
    model = build_nas_cell(SMALL, 10, NasCellConfig(matrix=((0, 1), (0, 0)), ops=(INPUT, OUTPUT), stacks=2))
    assert model.get_layer("stack2_cell1_output_projection").filters == 32


# --- conversion, LiteRT and the Edge TPU --------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_int8_conversion_runs_in_litert_and_agrees_with_keras(family):
    model = build(family, **SMALL_CONFIGS[family])
    patches, record = calibration(SMALL, 10)
    x = normalize(patches.x, record)
    sharpen(model, x)
    expected = model(x, training=False).numpy()
    got = run_tflite(to_tflite(model), x)
    assert got.shape == expected.shape == (16, 10)
    assert np.ptp(expected, axis=0).max() > 0.5  # tiles differ, so agreeing means something
    assert np.abs(got - expected).mean() < 0.05  # unrelated outputs differ by about 0.15
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.75


@pytest.fixture(scope="module")
def mobile_edgetpu() -> bytes:
    """The default mobile model through the `edgetpu` conversion profile."""
    return to_tflite(build_mobile(SMALL, 10), "edgetpu")


@pytest.mark.parametrize("head, shape, n_classes, last", [
    ("softmax", SMALL, 10, "SOFTMAX"), ("sigmoid", LARGE, 19, "LOGISTIC"),
])
def test_mobile_int8_graph_runs_entirely_on_the_edgetpu(head, shape, n_classes, last, mobile_edgetpu):
    if head == "softmax":
        content = mobile_edgetpu
    else:
        model = build_mobile(shape, n_classes, MobileConfig(**SMALL_CONFIGS["mobile"]), head=head)
        content = to_tflite(model, "edgetpu")
    report = check_edgetpu(content)
    assert report.ok, report
    assert set(report.ops) == {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", last}
    assert set(report.ops) <= EDGETPU_OPS
    assert run_tflite(content, np.zeros((1, *shape), np.float32)).shape == (1, n_classes)


def _tiny(activation) -> keras.Model:
    inputs = keras.Input((16, 16, 4), name="tiles")
    x = activation(keras.layers.Conv2D(8, 3, padding="same")(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _hard_swish_then_leaky_relu(x):
    # MobileNetV3's hard-swish, x * relu6(x + 3) / 6.
    gate = keras.layers.Rescaling(1 / 6)(keras.layers.ReLU(6.0)(keras.layers.Rescaling(1.0, offset=3.0)(x)))
    return keras.layers.LeakyReLU(0.1)(keras.layers.Multiply()([x, gate]))


def _swish_then_squeeze_excite(x):
    x = keras.layers.Activation("swish")(x)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(2, 1, activation="relu")(s)
    s = keras.layers.Conv2D(8, 1, activation="sigmoid")(s)
    return keras.layers.Multiply()([x, s])


def test_edgetpu_check_flags_unsupported_ops():
    report = check_edgetpu(to_tflite(_tiny(_hard_swish_then_leaky_relu), "edgetpu"))
    assert set(report.unsupported_ops) == {"HARD_SWISH", "LEAKY_RELU"}
    assert not report.ok


def test_swish_and_squeeze_excite_pass_the_op_check():
    # They lower to ops on the Edge TPU's list; the mobile family leaves them out for int8
    # accuracy and latency, which test_mobile_layers_are_edgetpu_friendly_kinds guards.
    report = check_edgetpu(to_tflite(_tiny(_swish_then_squeeze_excite), "edgetpu"))
    assert {"LOGISTIC", "MUL"} <= set(report.ops)
    assert report.ok, report


def test_edgetpu_check_flags_float_tensors_and_dynamic_batch():
    model = _tiny(lambda x: keras.layers.ReLU(6.0)(x))
    dynamic = check_edgetpu(to_tflite(model, "int8"))
    assert dynamic.unsupported_shapes == ("serving_default_tiles:0 [-1, 16, 16, 4]",)
    assert not dynamic.unsupported_ops and not dynamic.unsupported_types
    floating = check_edgetpu(to_tflite(model, "fp32"))
    assert floating.unsupported_types and all(t.endswith("(FLOAT32)") for t in floating.unsupported_types)


def test_edgetpu_check_rejects_what_is_not_tflite():
    with pytest.raises(ValueError, match="not a TFLite model"):
        check_edgetpu(b"PK\x03\x04 a zip file, not a model")


def test_edgetpu_check_runs_without_tensorflow(tmp_path, mobile_edgetpu):
    path = tmp_path / "mobile.tflite"
    path.write_bytes(mobile_edgetpu)
    code = BLOCKER + textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from models.edgetpu import check_edgetpu
        report = check_edgetpu(Path({str(path)!r}).read_bytes())
        assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], sorted(sys.modules)
        print(report.ok, ",".join(report.ops))
    """)
    result = subprocess.run([sys.executable, "-c", code, "ground", "hil", "onboard"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True CONV_2D,DEPTHWISE_CONV_2D,ADD,MEAN,FULLY_CONNECTED,SOFTMAX"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_models_survive_a_keras_save_and_load(family, tmp_path):
    config = {"matrix": TRUNCATING_MATRIX, "ops": TRUNCATING_OPS} if family == "nas-cell" else {}
    model = build(family, **config)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(3).normal(size=(2, *SMALL)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), model(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
