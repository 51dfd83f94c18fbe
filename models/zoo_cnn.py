"""The model-zoo CNN family (Schürholt et al., "Model Zoos", NeurIPS 2022; used for EuroSAT by
Honegger et al., IGARSS 2023): three conv layers and two dense layers, in a small ('CNN-s',
about 3k parameters) and a large ('CNN-l', about 11k) form, with the zoo's hyperparameter axes."""

from __future__ import annotations

from dataclasses import dataclass

import tf_keras as keras

from models.heads import check_task, classifier

# (filters, kernel) of the three conv layers, each followed by max-pooling where the zoo has it.
_LAYERS = {
    "cnn-s": [(8, 5, True), (6, 5, True), (4, 2, False)],
    "cnn-l": [(16, 3, True), (32, 3, True), (15, 3, True)],
}
_HIDDEN = 20


@dataclass(frozen=True)
class ZooConfig:
    """One point on the zoo's hyperparameter axes (the optimizer axes live in training)."""

    size: str = "cnn-l"
    activation: str = "relu"
    initializer: str = "glorot_uniform"
    dropout: float = 0.0
    seed: int = 0


def build_zoo_cnn(input_shape: tuple[int, int, int], n_classes: int, config: ZooConfig = ZooConfig(),
                  head: str = "softmax") -> keras.Model:
    check_task(input_shape, n_classes, head)
    if config.size not in _LAYERS:
        raise ValueError(f"unknown zoo CNN size {config.size!r}; choose from {', '.join(_LAYERS)}")
    keras.utils.set_random_seed(config.seed)
    init = keras.initializers.get({"class_name": config.initializer, "config": {"seed": config.seed}})
    x = inputs = keras.Input(input_shape, name="tiles")
    # Activation before max-pooling: for a monotonic activation (relu, tanh, ...) it is the zoo's
    # conv-pool-activation function exactly, but the int8 converter then fuses a ReLU into its
    # convolution, whose output scale spans only the non-negative half: half the rounding step of
    # the pre-activation range, which an int8 model stopped after a few epochs needs to decide
    # like its Keras model where its top classes lie close (tests/bench int8 agreement bench).
    for i, (filters, kernel, pool) in enumerate(_LAYERS[config.size]):
        x = keras.layers.Conv2D(filters, kernel, kernel_initializer=init, name=f"conv{i + 1}")(x)
        x = keras.layers.Activation(config.activation, name=f"act{i + 1}")(x)
        if pool:
            x = keras.layers.MaxPool2D(name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, seed=config.seed, name="dropout")(x)
    x = keras.layers.Dense(_HIDDEN, activation=config.activation, kernel_initializer=init, name="hidden")(x)
    return keras.Model(inputs, classifier(x, n_classes, head, init), name=f"zoo-{config.size}")
