"""A TensorFlow Lite model file read with the maintained `tflite` flatbuffer parser: its operators in execution order,
with their constant tensors and layer options, so a torch module can take its weights (MobileFaceNet, MTCNN)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metric.errors import ConfigError

PADDINGS = {0: "same", 1: "valid"}  # tflite.Padding
ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit", 6: "sigmoid"}


@dataclass(frozen=True)
class TfliteOp:
    """One operator: its kind (CONV_2D, ...), tensor names, each input's array when it is a constant, and options."""

    kind: str
    inputs: list[str]
    outputs: list[str]
    constants: list[np.ndarray | None]
    options: dict = field(default_factory=dict)

    def weights(self) -> list[np.ndarray]:
        """The constant inputs (weights, biases, per-channel factors), in input order."""
        return [c for c in self.constants if c is not None]


def _options(op, kind: str) -> dict:
    """The layer settings a port needs: padding, strides, pooling window, fused activation."""
    import tflite

    readers = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions,
        "AVERAGE_POOL_2D": tflite.Pool2DOptions,
        "FULLY_CONNECTED": tflite.FullyConnectedOptions,
    }
    if kind not in readers or op.BuiltinOptions() is None:
        return {}
    table = op.BuiltinOptions()
    options = readers[kind]()
    options.Init(table.Bytes, table.Pos)
    out = {"activation": ACTIVATIONS.get(options.FusedActivationFunction(), "unknown")}
    if hasattr(options, "Padding"):
        out.update(padding=PADDINGS.get(options.Padding(), "unknown"), stride=(options.StrideH(), options.StrideW()))
    if hasattr(options, "FilterHeight"):
        out["window"] = (options.FilterHeight(), options.FilterWidth())
    return out


def read_tflite_ops(path: str | Path) -> list[TfliteOp]:
    """The operators of the file's first subgraph, in execution order; one clear error for a file that is not a
    float TensorFlow Lite model."""
    import tflite

    path = Path(path)
    try:
        buffer = path.read_bytes()
        model = tflite.Model.GetRootAsModel(buffer, 0)
        graph = model.Subgraphs(0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        ops = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
            inputs, constants = [], []
            for j in range(op.InputsLength()):
                index = op.Inputs(j)
                if index < 0:  # an optional input left out
                    continue
                tensor = graph.Tensors(index)
                inputs.append(tensor.Name().decode())
                constants.append(_constant(model, tensor))
            outputs = [graph.Tensors(op.Outputs(j)).Name().decode() for j in range(op.OutputsLength())]
            ops.append(TfliteOp(kind, inputs, outputs, constants, _options(op, kind)))
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error}).") from None
    except Exception as error:  # a truncated or foreign file fails inside the flatbuffer reader
        raise ConfigError(
            f"{path} is not a readable TensorFlow Lite model ({type(error).__name__}); the file is "
            "corrupt or another format. Fetch it again: python -m metric.weights fetch <model>."
        ) from None
    if not ops:
        raise ConfigError(f"{path} holds no operators: it is not the TensorFlow Lite model expected.")
    return ops


def _constant(model, tensor) -> np.ndarray | None:
    """A float32 tensor's constant data (weights), or None for an activation."""
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if isinstance(data, int) or data is None or len(data) == 0:
        return None
    if tensor.Type() == 0:  # FLOAT32
        return np.frombuffer(data.tobytes(), dtype="<f4").reshape(tensor.ShapeAsNumpy()).copy()
    if tensor.Type() == 2:  # INT32: shapes and axes
        return np.frombuffer(data.tobytes(), dtype="<i4").reshape(tensor.ShapeAsNumpy() if tensor.ShapeLength() else ())
    raise ConfigError(
        f"tensor {tensor.Name().decode()!r} has type {tensor.Type()}: only float32 models are read "
        "(a quantised file is not the one expected)."
    )
