"""Sparse variational dropout (Molchanov, Ashukha and Vetrov, "Variational Dropout Sparsifies Deep
Neural Networks", ICML 2017), as the sparsified model zoos use it (arXiv 2304.13718).

Every conv and dense kernel weight w gets its own variance sigma^2 (log sigma^2 initialised at
-10, so training starts from the dense model); the noise is sampled through the local
reparameterisation trick (the pre-activations' mean and variance, one sample per example), and the
loss adds the KL divergence to the log-uniform prior, in the paper's approximation, per training
example. A weight's log alpha = log sigma^2 - log w^2 says how much noise it tolerates: weights
with log alpha >= 3 carry none of the signal and are pruned.

`sparsify` runs this restarted from a trained model, `log_alphas` reads them; `masked` gives
the plain model (the family's own layers, ready to convert) with the weights at or above a log
alpha threshold set to zero, and `threshold_for` the threshold that prunes a given share."""

from __future__ import annotations

import numpy as np

from ground.tf import keras, tf
from ground.datasets.patches import PatchSet
from ground.training.record import ModelRecord
from ground.training.train import TrainConfig, fit

LOG_SIGMA2_INIT = -10.0
THRESHOLD = 3.0
_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695  # the KL approximation's constants (paper, eq. 14)
_EPS = 1e-8


class _Variational:
    """What the variational conv and dense layers share: log sigma^2 beside the kernel, log
    alpha, the KL term (per training example: `examples` is the training set's size), and the
    output's bias and activation. Mixed in before the Keras layer class."""

    def __init__(self, *args, examples: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.examples = float(examples)

    def build(self, input_shape) -> None:
        super().build(input_shape)
        self.log_sigma2 = self.add_weight(name="log_sigma2", shape=self.kernel.shape,
                                          initializer=keras.initializers.Constant(LOG_SIGMA2_INIT), trainable=True)

    def get_config(self) -> dict:
        return {**super().get_config(), "examples": self.examples}

    def log_alpha(self):
        return tf.clip_by_value(self.log_sigma2 - tf.math.log(tf.square(self.kernel) + _EPS), -10.0, 10.0)

    def _kl(self):
        la = self.log_alpha()
        negative_kl = _K1 * tf.sigmoid(_K2 + _K3 * la) - 0.5 * tf.math.softplus(-la) - _K1
        return -tf.reduce_sum(negative_kl) / self.examples

    def call(self, inputs, training=None):
        self.add_loss(self._kl())
        if training:  # the local reparameterisation trick: one noise sample per pre-activation
            mean = self._product(inputs, self.kernel)
            var = self._product(tf.square(inputs), tf.exp(self.log_sigma2))
            outputs = mean + tf.sqrt(var + _EPS) * tf.random.normal(tf.shape(mean))
        else:
            outputs = self._product(inputs, self.kernel * tf.cast(self.log_alpha() < THRESHOLD, self.kernel.dtype))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


class VariationalDense(_Variational, keras.layers.Dense):
    def _product(self, inputs, kernel):
        return tf.matmul(inputs, kernel)


class VariationalConv2D(_Variational, keras.layers.Conv2D):
    def _product(self, inputs, kernel):
        return tf.nn.conv2d(inputs, kernel, strides=self.strides, padding=self.padding.upper(),
                            dilations=self.dilation_rate, data_format="NHWC")


def _variational_twin(model: keras.Model, examples: int) -> keras.Model:
    """`model` with its Conv2D and Dense layers (those classes exactly, not depthwise or grouped
    convolutions) made variational, its weights copied."""
    def clone(layer):
        config = layer.get_config()
        if type(layer) is keras.layers.Dense:
            return VariationalDense.from_config({**config, "examples": examples})
        if type(layer) is keras.layers.Conv2D and config.get("groups", 1) == 1:
            return VariationalConv2D.from_config({**config, "examples": examples})
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    for source, target in zip(model.layers, twin.layers):
        extra = [np.full(target.kernel.shape, LOG_SIGMA2_INIT, np.float32)] if isinstance(target, _Variational) else []
        target.set_weights(source.get_weights() + extra)
    return twin


def sparsify(model: keras.Model, record: ModelRecord, train: PatchSet, val: PatchSet,
             config: TrainConfig) -> keras.Model:
    """`model`'s variational twin, trained from `model`'s weights for `config.epochs` (the stage
    is appended to `record`'s history)."""
    twin = _variational_twin(model, len(train))
    fit(twin, record, train, val, config, stage="variational-dropout")
    return twin


def log_alphas(twin: keras.Model) -> dict[str, np.ndarray]:
    """The log alpha of every variational kernel weight, by layer name."""
    return {layer.name: layer.log_alpha().numpy() for layer in twin.layers if isinstance(layer, _Variational)}


def threshold_for(log_alphas: list[np.ndarray], sparsity: float) -> float:
    """The log alpha threshold that prunes `sparsity` of the kernels' weights (the largest log
    alphas first), pooled over all layers."""
    pooled = np.sort(np.concatenate([a.ravel() for a in log_alphas]))
    keep = int(round(len(pooled) * (1 - sparsity)))
    return float(pooled[keep]) if keep < len(pooled) else float("inf")


def masked(model: keras.Model, twin: keras.Model, threshold: float) -> keras.Model:
    """A copy of `model` (its own layer classes) holding `twin`'s trained weights, with every
    kernel weight whose log alpha is at or above `threshold` set to zero."""
    plain = keras.models.clone_model(model)
    for source, target in zip(twin.layers, plain.layers):
        if isinstance(source, _Variational):
            kernel = source.kernel.numpy() * (source.log_alpha().numpy() < threshold)
            target.set_weights([kernel, *([source.bias.numpy()] if source.use_bias else [])])
        else:
            target.set_weights(source.get_weights())
    return plain
