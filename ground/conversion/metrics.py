"""Classification metrics in numpy: single-label (accuracy, per-class F1, confusion) and
multi-label (micro/macro F1, mean average precision), and agreement between two models."""

from __future__ import annotations

import numpy as np

from ground.datasets.patches import MULTI_LABEL, PatchSet

THRESHOLD = 0.5  # a multi-label class is predicted when its probability reaches this


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def per_class_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    cm = confusion(y, pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    return _f1(tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp)


def multilabel_f1(y: np.ndarray, scores: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Micro F1, macro F1 and per-class F1 of thresholded scores against multi-hot labels."""
    pred = scores >= THRESHOLD
    truth = y.astype(bool)
    tp = (pred & truth).sum(axis=0).astype(np.float64)
    fp = (pred & ~truth).sum(axis=0).astype(np.float64)
    fn = (~pred & truth).sum(axis=0).astype(np.float64)
    micro = float(_f1(tp.sum(), fp.sum(), fn.sum()))
    per_class = _f1(tp, fp, fn)
    present = truth.any(axis=0) | pred.any(axis=0)
    macro = float(per_class[present].mean()) if present.any() else 0.0
    return micro, macro, per_class


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive, ranked by
    score (the definition of scikit-learn's average_precision_score, without interpolation)."""
    order = np.argsort(-scores, kind="stable")
    hits = truth[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def mean_average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean over the classes that have positives (macro mAP)."""
    aps = [average_precision(y[:, c], scores[:, c]) for c in range(y.shape[1]) if y[:, c].any()]
    return float(np.mean(aps)) if aps else float("nan")


def top1_accuracy(scores: np.ndarray, patches: PatchSet) -> float:
    """The headline figure a manifest records: top-1 accuracy (single-label) or micro F1
    (multi-label)."""
    if patches.task == MULTI_LABEL:
        return multilabel_f1(patches.y, scores)[0]
    return float((scores.argmax(axis=1) == patches.y).mean())


def agreement(a: np.ndarray, b: np.ndarray, task: str) -> float:
    """How often two models decide alike: the same top-1 class, or (multi-label) the same
    decision for each class of each sample."""
    if task == MULTI_LABEL:
        return float(((a >= THRESHOLD) == (b >= THRESHOLD)).mean())
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())
