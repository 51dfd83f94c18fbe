"""Transfer from a trained model (a zoo member, or any model `ground train` wrote): its encoder,
every layer before the classifier `classes`, under a new classifier for another dataset's classes,
fine-tuned whole or with the encoder frozen (BigEarthNet's WRN+ECA zoo was reused this way).

The encoder reads the bands it was trained on. Another band set is refused, unless the input
layer is re-learned: the network is rebuilt on the new input, the first layer that has weights
(the one that reads the bands) starts afresh and always trains, and every later layer keeps its
weights. Either way the new model normalises inputs by the new training split's band statistics."""

from __future__ import annotations

from pathlib import Path

from ground.tf import keras
from ground.datasets.patches import MULTI_LABEL, PatchSet
from ground.errors import DatasetError, KerasModelError
from ground.training.record import ModelRecord
from ground.training.train import load_keras

CLASSIFIER = "classes"  # the output layer's name in every family (models/heads.py)


def source_model(path: Path) -> Path:
    """The model file of a zoo member's folder (its dense model), or `path` itself."""
    return path / "dense.keras" if path.is_dir() else path


def transfer(source: Path, patches: PatchSet, train: PatchSet, relearn_input: bool, freeze_encoder: bool,
             seed: int, split_seed: int) -> tuple[keras.Model, ModelRecord]:
    """A model with `source`'s encoder and a new classifier for `patches`, and its record."""
    path = source_model(source)
    record = ModelRecord.load(path)  # the cheap check first
    model = load_keras(path)
    if tuple(model.input_shape[1:3]) != tuple(patches.x.shape[1:3]):
        raise DatasetError(f"{path} reads {model.input_shape[1]}x{model.input_shape[2]} patches; the dataset's are "
                           f"{patches.x.shape[1]}x{patches.x.shape[2]}")
    bands_differ = tuple(patches.bands) != tuple(record.bands)
    if bands_differ and not relearn_input:
        raise DatasetError(f"the dataset's bands ({','.join(patches.bands)}) are not those {path} was trained on "
                           f"({','.join(record.bands)}); give --relearn-input to learn a new input layer")
    try:
        features = model.get_layer(CLASSIFIER).input
    except ValueError:
        raise KerasModelError(f"{path} has no layer named {CLASSIFIER!r}: its encoder cannot be told from its "
                              "classifier") from None
    encoder = keras.Model(model.input, features, name=f"{model.name}-encoder")
    first = None
    if bands_differ:
        encoder, first = _new_input(encoder, patches.x.shape[1:])
    for layer in encoder.layers:
        layer.trainable = not freeze_encoder or layer.name == first
    keras.utils.set_random_seed(seed)
    head = "sigmoid" if patches.task == MULTI_LABEL else "softmax"
    outputs = keras.layers.Dense(len(patches.classes), activation=head, name=CLASSIFIER)(encoder.output)
    new = keras.Model(encoder.input, outputs, name=model.name)
    mean, std = train.band_stats()
    return new, ModelRecord(
        architecture=model.name, bands=patches.bands, classes=patches.classes,
        mean=tuple(round(float(m), 4) for m in mean), std=tuple(round(float(s), 4) for s in std),
        parameters=int(new.count_params()), dataset=patches.source, split_seed=split_seed, task=patches.task)


def _new_input(encoder: keras.Model, shape: tuple[int, ...]) -> tuple[keras.Model, str]:
    """`encoder` rebuilt on an input of `shape`, its weights kept where their shapes still fit
    (all but the first layer's), and the name of that first layer."""
    rebuilt = keras.models.clone_model(encoder, input_tensors=keras.Input(tuple(int(s) for s in shape), name="tiles"))
    first = next(layer.name for layer in rebuilt.layers if layer.weights)
    for old in encoder.layers:
        if old.weights and old.name != first:
            rebuilt.get_layer(old.name).set_weights(old.get_weights())
    return rebuilt, first
