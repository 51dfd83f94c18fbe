"""Reading the graph inside a `.tflite` flatbuffer without running it: the operators in order,
their tensors and constant weights. Uses the schema bindings that ship with ai_edge_litert."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from onboard.errors import ModelError

# TFLite tensor type codes (schema.fbs TensorType) as numpy dtypes.
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
           9: np.int8, 10: np.float64}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None  # constant contents (weights), None for activations
    dynamic: bool = False  # some dimension is only known at run time (e.g. the batch)


@dataclass(frozen=True)
class Operator:
    name: str  # builtin operator name, e.g. CONV_2D, or the custom code
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    stride: tuple[int, int] | None  # for convolutions and pooling

    @property
    def weights(self) -> Tensor | None:
        """The filter of a convolution or fully-connected layer."""
        if self.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV") and len(self.inputs) > 1:
            return self.inputs[1]
        return None


@dataclass(frozen=True)
class Graph:
    operators: tuple[Operator, ...]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    @property
    def op_names(self) -> list[str]:
        return [op.name for op in self.operators]


@lru_cache(maxsize=1)
def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # the older runtime ships the same bindings
        from tflite_runtime import schema_py_generated  # type: ignore[no-redef]
    names = {v: k for k, v in vars(schema_py_generated.BuiltinOperator).items() if not k.startswith("_")}
    return schema_py_generated, names


def read_graph(content: bytes, source: str = "model") -> Graph:
    """The main subgraph of a TFLite model."""
    schema, op_names = _schema()
    if content[4:8] != b"TFL3":
        raise ModelError(f"{source} is not a TFLite flatbuffer")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    except Exception as exc:  # the generated reader raises whatever a bad offset causes
        raise ModelError(f"{source} cannot be parsed as a TFLite model: {exc}") from None
    if not model.subgraphs:
        raise ModelError(f"{source} has no subgraph")
    sg = model.subgraphs[0]
    # A float16 model keeps its filters as constants that DEQUANTIZE expands at load time; the
    # filter an operator reads is that constant.
    dequantized = {}
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) == "DEQUANTIZE":
            dequantized[int(op.outputs[0])] = int(op.inputs[0])

    def tensor(i: int) -> Tensor:
        t = sg.tensors[dequantized.get(i, i)]
        dtype = np.dtype(_DTYPES.get(t.type, np.uint8))
        buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
        data = None
        if buf is not None and len(buf):
            data = np.frombuffer(bytes(bytearray(buf)), dtype=dtype).reshape(shape)
        dynamic = t.shapeSignature is not None and any(int(d) < 0 for d in t.shapeSignature)
        return Tensor(t.name.decode() if t.name else "", shape, dtype.name, data, dynamic)

    operators = []
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = code.customCode.decode() if code.customCode else "CUSTOM"
        opts = op.builtinOptions
        stride = (int(opts.strideH), int(opts.strideW)) if opts is not None and hasattr(opts, "strideH") else None
        operators.append(Operator(name, tuple(tensor(i) for i in op.inputs if i >= 0),
                                  tuple(tensor(i) for i in op.outputs if i >= 0), stride))
    return Graph(tuple(operators), tuple(tensor(i) for i in sg.inputs), tuple(tensor(i) for i in sg.outputs))


def metadata(content: bytes, name: str, source: str = "model") -> bytes | None:
    """The metadata entry `name` of a TFLite model (a buffer the interpreter ignores), if any."""
    schema, _ = _schema()
    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() is not None and entry.Name().decode() == name:
                buffer = model.Buffers(entry.Buffer())
                return bytes(buffer.DataAsNumpy()) if buffer is not None and buffer.DataLength() else b""
    except Exception as exc:  # the generated reader raises whatever a bad offset causes
        raise ModelError(f"{source}: its metadata cannot be read: {exc}") from None
    return None


def with_metadata(content: bytes, name: str, data: bytes) -> bytes:
    """`content` with the metadata entry `name` set to `data` (replacing one of that name)."""
    import flatbuffers

    schema, _ = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    entries = list(model.metadata or [])
    entry = next((m for m in entries if (m.name.decode() if isinstance(m.name, bytes) else m.name) == name), None)
    if entry is None:
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers)
        model.buffers.append(schema.BufferT())
        entries.append(entry)
    model.buffers[entry.buffer].data = np.frombuffer(data, dtype=np.uint8)
    model.metadata = entries
    builder = flatbuffers.Builder(len(content) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
