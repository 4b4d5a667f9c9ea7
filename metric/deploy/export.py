"""Model files for deployment: ONNX and TorchScript export, int8 quantization, magnitude pruning, and the size
figures (parameters, MACs, compressed weights) a phone build is judged by."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import torch

from datamodules.atomic import write_file_atomically
from datamodules.normalisation import to_model_input
from metric.errors import ConfigError
from metric.scoring.embed import Model


def count_macs(net: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one image through every Conv2d and Linear layer (the dominant cost)."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    def linear(module, inputs, output):
        nonlocal total
        total += output[0].numel() * module.in_features

    hooks = [
        m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else linear)
        for m in net.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.no_grad():
        net(example[:1])
    for h in hooks:
        h.remove()
    return total


def size_report(net: torch.nn.Module, example: torch.Tensor) -> dict:
    params = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() * b.element_size() for b in net.buffers())
    return {
        "parameters": params,
        "size_mb_float32": (params * 4 + buffers) / 2**20,
        "macs_per_image": count_macs(net, example),
    }


def prunable_weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def gzip_weight_mb(net: torch.nn.Module) -> float:
    """MB of every parameter as float32, gzip-compressed: what zeros save in a compressed download."""
    raw = b"".join(p.detach().float().numpy().tobytes() for p in net.parameters())
    return len(gzip.compress(raw, compresslevel=6)) / 2**20


def prune_magnitude(net: torch.nn.Module, sparsity: float) -> dict:
    """Zero the `sparsity` share of all Conv2d and Linear weights with the smallest magnitude (one global
    ranking across layers, so small layers are not forced to lose as much as large ones), in place. The
    magnitudes are those before BatchNorm scales are folded into the convolutions."""
    weights = prunable_weights(net)
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    count = int(round(sparsity * magnitudes.numel()))
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    keep[torch.topk(magnitudes, count, largest=False).indices] = False  # exactly `count`, ties or not
    with torch.no_grad():
        start = 0
        for w in weights:
            w.masked_fill_(~keep[start : start + w.numel()].view_as(w), 0.0)  # +0.0: -0.0 would not compress
            start += w.numel()
    zeros = sum(int((w == 0).sum()) for w in weights)
    return {
        "prune_sparsity": zeros / magnitudes.numel(),
        "prunable_weights": int(magnitudes.numel()),
        "nonzero_parameters": sum(int((p != 0).sum()) for p in net.parameters()),
    }


def export_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its successor
        write_file_atomically(
            path,
            lambda tmp: torch.onnx.export(
                net,
                (example,),
                str(tmp),
                input_names=["images"],
                output_names=["embeddings"],
                dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            ),
        )


def export_torchscript(net: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(net, example)
    write_file_atomically(path, lambda tmp: traced.save(str(tmp)))


def onnx_model(session) -> Model:
    """An ONNX Runtime session as a model the embedding loop can run."""
    return lambda inputs: torch.from_numpy(session.run(None, {"images": inputs.numpy()})[0])


def compact_onnx(path: Path) -> None:
    """Rewrite an ONNX file without what only a reader needs: node names, doc strings and shape annotations go, and
    every inner tensor gets a short name (the input and output keep theirs). The computation is unchanged; the
    quantizer's long names are a tenth of a small int8 model's file."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    keep = {v.name for v in list(graph.input) + list(graph.output)}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for node in graph.node:
        node.name, node.doc_string = "", ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    del graph.value_info[:]
    write_file_atomically(path, lambda tmp: onnx.save(model, str(tmp)))


CALIBRATIONS = ("minmax", "percentile")


def check_calibration(method: str, percentile: float) -> None:
    if method not in CALIBRATIONS:
        raise ConfigError(f"int8_calibration={method!r} is not one of {', '.join(CALIBRATIONS)}.")
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 90 <= percentile < 100:
        raise ConfigError(
            f"int8_percentile={percentile!r} must lie in [90, 100): the share of each activation's values "
            "the int8 range covers (99.99: the rarest 0.01% are clipped)."
        )


def quantize_int8(
    fp32: Path, int8: Path, calibration_images: np.ndarray, method: str = "minmax", percentile: float = 99.99
) -> None:
    """Static int8 (ONNX Runtime, QDQ format, per-channel weights), activations calibrated on training images: each
    activation's range from its smallest to largest value (`minmax`), or clipped to its `percentile` (`percentile`:
    a few outliers then no longer squeeze every other value into a handful of levels)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    # the percentile histogram stacks every batch's activations, so its batches must all have one shape
    size = 32 if method == "minmax" else 1

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                [
                    {"images": to_model_input(calibration_images[i : i + size]).numpy()}
                    for i in range(0, len(calibration_images), size)
                ]
            )

        def get_next(self):
            return next(self.batches, None)

    check_calibration(method, percentile)
    calibration = (
        {"calibrate_method": CalibrationMethod.Percentile, "extra_options": {"CalibPercentile": percentile}}
        if method == "percentile"
        else {"calibrate_method": CalibrationMethod.MinMax}
    )
    write_file_atomically(
        int8,
        lambda tmp: quantize_static(
            str(fp32),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            **calibration,
        ),
    )
    compact_onnx(int8)
