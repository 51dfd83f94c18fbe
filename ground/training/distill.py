"""Knowledge distillation (Hinton et al. 2015): a student learns from the labels and from the
teacher's softened predictions. The models end in softmax (or sigmoid), so the teacher's and the
student's logits are recovered as log-probabilities, which softmax with temperature T treats
exactly as logits."""

from __future__ import annotations

import numpy as np

from ground.tf import keras, tf
from ground.datasets.patches import MULTI_LABEL, PatchSet
from ground.training.record import ModelRecord
from ground.training.train import Objective, predict

EPS = 1e-7


def distillation_objective(teacher: keras.Model, teacher_record: ModelRecord, task: str, train: PatchSet,
                           val: PatchSet, temperature: float = 4.0, alpha: float = 0.1) -> Objective:
    """loss = alpha * (loss on labels) + (1 - alpha) * (loss against the teacher), where the
    teacher term is T^2 KL(softmax(t/T) || softmax(s/T)) for single-label tasks (T^2 keeps its
    gradients on the scale of the label term) and binary cross-entropy against the teacher's
    probabilities for multi-label ones. Targets carry the labels and the teacher's probabilities
    side by side."""
    n = len(train.classes)

    def pack(patches: PatchSet) -> np.ndarray:
        labels = patches.y.astype(np.float32) if task == MULTI_LABEL else np.eye(n, dtype=np.float32)[patches.y]
        return np.concatenate([labels, predict(teacher, teacher_record, patches).astype(np.float32)], axis=1)

    t = float(temperature)

    def loss(packed, student):
        labels, teacher_p = packed[:, :n], packed[:, n:]
        student = tf.clip_by_value(student, EPS, 1.0)
        if task == MULTI_LABEL:
            bce = keras.losses.binary_crossentropy
            return alpha * bce(labels, student) + (1 - alpha) * bce(teacher_p, student)
        hard = keras.losses.categorical_crossentropy(labels, student)
        soft_teacher = tf.nn.softmax(tf.math.log(tf.clip_by_value(teacher_p, EPS, 1.0)) / t)
        log_soft_student = tf.nn.log_softmax(tf.math.log(student) / t)
        kl = tf.reduce_sum(soft_teacher * (tf.math.log(tf.clip_by_value(soft_teacher, EPS, 1.0)) - log_soft_student), axis=-1)
        return alpha * hard + (1 - alpha) * t * t * kl

    def accuracy(packed, student):
        if task == MULTI_LABEL:
            return keras.metrics.binary_accuracy(packed[:, :n], student)
        return keras.metrics.categorical_accuracy(packed[:, :n], student)

    return Objective(loss, [accuracy], pack(train), pack(val))
