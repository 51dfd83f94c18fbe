"""The pre-flight report of a converted model: what is in it, whether it will run on the Edge
TPU, whether XNNPACK's sparse kernels can use it, how big it is and how sparse it really is."""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.edgetpu import check_edgetpu
from onboard.errors import ManifestError, ModelError
from onboard.contracts.manifest import EMBEDDED_NAME
from onboard.inference.tflite_file import Graph, metadata, read_graph
from onboard.schema import Schema, Text, decode

# XNNPACK runs 1x1 convolutions as sparse matrix products only when at least 2/3 of their
# weights are zero (its subgraph rewriting's threshold).
XNNPACK_MIN_SPARSITY = 2 / 3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    why: str


@dataclass
class Preflight:
    model: str
    ops: list[str]
    size_bytes: int
    gzip_bytes: int
    sparsity: float  # zeros among all weights of rank 2 or more
    layer_sparsity: list[tuple[str, str, float]]  # (op, weight tensor, sparsity)
    edgetpu: list[Check] = field(default_factory=list)
    xnnpack_sparse: list[Check] = field(default_factory=list)
    embedded_manifest: str | None = None  # the id of the manifest the file carries

    @property
    def edgetpu_ok(self) -> bool:
        return all(c.ok for c in self.edgetpu)

    @property
    def xnnpack_sparse_ok(self) -> bool:
        return all(c.ok for c in self.xnnpack_sparse)

    def to_markdown(self) -> str:
        counts = Counter(self.ops)
        lines = [
            f"# Pre-flight: {self.model}", "",
            f"- size: {self.size_bytes} bytes ({self.gzip_bytes} gzipped)",
            f"- measured weight sparsity: {self.sparsity:.1%}",
            f"- manifest embedded as TFLite metadata: "
            + (f"yes ({self.embedded_manifest})" if self.embedded_manifest else "no"),
            f"- operators ({len(self.ops)}): " + ", ".join(f"{op} x{n}" for op, n in counts.items()), "",
            f"## Edge TPU: {'compatible' if self.edgetpu_ok else 'NOT compatible'}", "",
            *[f"- [{'x' if c.ok else ' '}] {c.name}: {c.why}" for c in self.edgetpu], "",
            f"## XNNPACK sparse inference: {'eligible' if self.xnnpack_sparse_ok else 'not eligible'}", "",
            *[f"- [{'x' if c.ok else ' '}] {c.name}: {c.why}" for c in self.xnnpack_sparse], "",
            "## Weight sparsity by layer", "",
            "| op | weights | sparsity |", "|---|---|---|",
            *[f"| {op} | {name} | {s:.1%} |" for op, name, s in self.layer_sparsity],
        ]
        return "\n".join(lines) + "\n"


def _sparsity(w: np.ndarray) -> float:
    return float((w == 0).mean()) if w.size else 0.0


WEIGHT_DTYPES = (np.float32, np.float16, np.int8, np.uint8)


def _weights(graph: Graph) -> list[tuple[str, str, np.ndarray]]:
    """Every weight an operator reads: constants of rank 2 or more in a weight type (not, say, a
    PAD's int32 paddings). A float16 filter counts at the operator that uses it, not at the
    DEQUANTIZE that expands it."""
    seen, out = set(), []
    for op in graph.operators:
        if op.name == "DEQUANTIZE":
            continue
        for t in op.inputs:
            if t.data is not None and t.data.ndim >= 2 and t.data.dtype in WEIGHT_DTYPES and t.name not in seen:
                seen.add(t.name)
                out.append((op.name, t.name, t.data))
    return out


def _edgetpu_checks(content: bytes) -> list[Check]:
    r = check_edgetpu(content)

    def listed(items: tuple[str, ...]) -> str:
        return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")

    return [
        Check("supported operators", not r.unsupported_ops,
              "all operators are on the Edge TPU's list" if not r.unsupported_ops
              else f"{listed(r.unsupported_ops)} would run on the CPU, and everything after the first of them"),
        Check("8-bit tensors", not r.unsupported_types,
              "all tensors are int8/uint8 (int32 biases)" if not r.unsupported_types
              else f"{listed(r.unsupported_types)}: use the int8 or edgetpu profile"),
        Check("static shapes", not r.unsupported_shapes,
              "shapes are fixed and at most 3-D beyond a batch of 1" if not r.unsupported_shapes
              else f"{listed(r.unsupported_shapes)}: use the edgetpu profile"),
    ]


def _xnnpack_checks(graph: Graph) -> list[Check]:
    weights = [w for _, _, w in _weights(graph)]
    is_float = bool(weights) and all(w.dtype in (np.float32, np.float16) for w in weights)
    # Padding and weight expansion ahead of the first convolution are folded into it by XNNPACK.
    first = next((op for op in graph.operators if op.name not in ("PAD", "DEQUANTIZE")), None)
    fw = first.weights if first else None
    first_ok = (first is not None and first.name == "CONV_2D" and fw is not None and fw.shape[1:] == (3, 3, 3)
                and first.stride == (2, 2))
    first_desc = ("none" if first is None else
                  f"{first.name}" + (f" {fw.shape[1]}x{fw.shape[2]} on {fw.shape[3]} channels, stride {first.stride}"
                                     if fw is not None and len(fw.shape) == 4 else ""))
    pointwise = [op for op in graph.operators if op.name == "CONV_2D" and op.weights is not None
                 and op.weights.shape[1:3] == (1, 1)]
    sparse_pw = [op for op in pointwise if op.weights.data is not None and _sparsity(op.weights.data) >= XNNPACK_MIN_SPARSITY]
    pooled = any(op.name == "MEAN" for op in graph.operators)
    return [
        Check("float model", is_float, "weights are float32/float16" if is_float
              else "weights are quantized: XNNPACK's sparse kernels are float only (use the fp32 or fp16 profile)"),
        Check("first layer", first_ok, f"first operator: {first_desc}"
              + ("" if first_ok else "; needs a 3x3 stride-2 CONV_2D on 3 input channels")),
        Check("sparse 1x1 convolutions", bool(sparse_pw),
              f"{len(sparse_pw)} of {len(pointwise)} 1x1 convolutions are at least {XNNPACK_MIN_SPARSITY:.0%} sparse"),
        Check("global average pooling", pooled, "the graph ends in a MEAN" if pooled
              else "no global average pooling (MEAN) closes the convolutional part"),
    ]


def preflight(content: bytes, name: str = "model") -> Preflight:
    graph = read_graph(content, name)
    weights = _weights(graph)
    total = sum(w.size for _, _, w in weights)
    zeros = sum(int((w == 0).sum()) for _, _, w in weights)
    return Preflight(
        model=name, ops=graph.op_names, size_bytes=len(content), gzip_bytes=len(gzip.compress(content, 9)),
        sparsity=zeros / total if total else 0.0,
        layer_sparsity=[(op, tname, _sparsity(w)) for op, tname, w in weights],
        edgetpu=_edgetpu_checks(content), xnnpack_sparse=_xnnpack_checks(graph),
        embedded_manifest=_embedded_id(content, name),
    )


def preflight_file(path: Path) -> Preflight:
    """The pre-flight report of the model file at `path`."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {path} cannot be read: {exc.strerror}") from None
    return preflight(content, path.name)


class _Carried(Schema, forbid_unknown_fields=False):
    """What the report reads of the manifest a model carries: its id."""

    id: Text


def _embedded_id(content: bytes, name: str) -> str | None:
    carried = metadata(content, EMBEDDED_NAME, name)
    if carried is None:
        return None
    try:
        return decode(carried, _Carried, source="the carried manifest", error=ManifestError).id
    except ManifestError:
        return "unreadable"
