"""Pre-flight check of a .tflite graph against the Coral Edge TPU's rules, before it goes to
`edgetpu_compiler`. It reads the flatbuffer with the schema bindings that ship in ai_edge_litert,
so it runs where TensorFlow is not installed.

The Edge TPU's rules (https://coral.ai/docs/edgetpu/models-intro/#compatibility-overview):
- every tensor parameter is quantized to 8 bits (int8 or uint8; biases int32): full-integer
  quantization, with no float tensors left;
- tensor sizes are constant at compile time: no dynamic dimensions, including the batch;
- model parameters (such as biases) are constant at compile time;
- tensors have 1, 2 or 3 dimensions, or, with more, only the 3 innermost may exceed 1 (so a
  batch of 1);
- only the operations in EDGETPU_OPS, with per-op limits this check does not see: no fused
  activation on pooling and concatenation, Mean and Pad along rows/columns only, Softmax on a
  1-D input of at most 16,000 elements, FullyConnected with a 1-D output, StridedSlice with
  strides of 1, resize ops on 3-D tensors;
- the compiler partitions the graph once: from the first unsupported op on, everything runs on
  the CPU, supported or not;
- parameters are cached in about 8 MB of on-chip memory; beyond that they stream from host
  memory, which runs but slowly (the compiler reports it).

Swish and squeeze-and-excitation lower to LOGISTIC and MUL, which are on the list: this check
passes them. Hard-swish becomes HARD_SWISH, which is not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

# TFLite builtin operators the Edge TPU executes, from the table at
# https://coral.ai/docs/edgetpu/models-intro/#supported-operations (Add, AveragePool2d,
# Concatenation, Conv2d, DepthwiseConv2d, ExpandDims, FullyConnected, L2Normalization, Logistic,
# LSTM, Maximum, MaxPool2d, Mean, Minimum, Mul, Pack, Pad, PReLU, Quantize, ReduceMax, ReduceMin,
# ReLU, ReLU6, ReLUN1To1, Reshape, ResizeBilinear, ResizeNearestNeighbor, Rsqrt, Slice, Softmax,
# SpaceToDepth, Split, Squeeze, StridedSlice, Sub, Sum, Squared-difference, Tanh, Transpose,
# TransposeConv), by their schema names. Some need a recent compiler and runtime, as the table
# notes; the list of 2019 had Add through StridedSlice without ExpandDims, LSTM, Pack, PReLU,
# Quantize, ReduceMax, ReduceMin, Rsqrt, Sum, Squared-difference, Transpose and TransposeConv.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
    "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE",
    "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
    "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
_EDGETPU_TYPES = frozenset({schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT32})


@dataclass(frozen=True)
class EdgeTpuReport:
    ops: tuple[str, ...]  # every operator in the graph, once each, in order of first use
    unsupported_ops: tuple[str, ...]  # those not in EDGETPU_OPS (custom ops by their custom code)
    unsupported_types: tuple[str, ...]  # "tensor (TYPE)" for tensors neither 8-bit nor int32 bias
    # "tensor [shape]" for inputs with a dynamic dimension, activations whose size depends on
    # the data, and activations with more than 3 dimensions over 1
    unsupported_shapes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the whole graph can map to the Edge TPU, as far as these rules tell."""
        return not (self.unsupported_ops or self.unsupported_types or self.unsupported_shapes)


def check_edgetpu(content: bytes) -> EdgeTpuReport:
    """Check the bytes of a .tflite file against the Edge TPU's rules (see the module docstring)."""
    if len(content) < 8 or bytes(content[4:8]) != b"TFL3":
        raise ValueError("not a TFLite model: the flatbuffer identifier TFL3 is missing; "
                         "pass the bytes of a .tflite file")
    model = schema.Model.GetRootAs(content, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    ops: dict[str, None] = {}
    types: list[str] = []
    shapes: list[str] = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            ops[_op_name(codes[graph.Operators(i).OpcodeIndex()])] = None
        # The shape rules are about the data flowing through the graph (its inputs and what
        # operators compute), not about constant weights such as 4-D convolution kernels. A
        # dynamic batch shows in every activation; it is reported once, at the inputs.
        inputs = {int(t) for t in graph.InputsAsNumpy()} if graph.InputsLength() else set()
        activations = set(inputs)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if op.OutputsLength():
                activations.update(int(t) for t in op.OutputsAsNumpy() if t >= 0)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            name = tensor.Name().decode()
            if tensor.Type() not in _EDGETPU_TYPES:
                types.append(f"{name} ({_TYPE_NAMES.get(tensor.Type(), tensor.Type())})")
            if t in activations:
                shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.zeros(0, np.int32)
                dynamic = (tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else shape) < 0
                if (t in inputs and dynamic.any()) or dynamic[1:].any() or (shape[:-3] > 1).any():
                    shapes.append(f"{name} {np.where(dynamic, -1, shape).tolist()}")
    return EdgeTpuReport(ops=tuple(ops), unsupported_ops=tuple(op for op in ops if op not in EDGETPU_OPS),
                         unsupported_types=tuple(types), unsupported_shapes=tuple(shapes))


def _op_name(code) -> str:
    # Opcodes below 127 live in the deprecated 8-bit field, newer ones in the 32-bit field;
    # the larger of the two is the operator, as TFLite's GetBuiltinCode reads it.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return code.CustomCode().decode()
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
