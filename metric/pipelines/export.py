"""Export (metric.export): a phone-ready ONNX or TorchScript model, its sidecar JSON (preprocessing, matcher,
threshold), its size (parameters, MB, MACs per image), and optionally int8 quantization and magnitude pruning,
each with the test EER before and after."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from datamodules.base import IdentityDataModule
from datamodules.faces.dlib_faces import TEMPLATE_ROWS, TEMPLATES
from datamodules.images import template_points
from metric.deploy.export import (
    check_calibration,
    export_onnx,
    export_torchscript,
    gzip_weight_mb,
    onnx_model,
    prune_magnitude,
    quantize_int8,
    size_report,
)
from metric.errors import ConfigError
from metric.model.checkpoint import face_spec, matcher_name
from metric.scoring.embed import Model, embed_images
from metric.scoring.load import LoadedModel, load_for_eval
from metric.scoring.protocols import embeddings_eer

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def sidecar(loaded: LoadedModel, model_file: str, fmt: str, quantize: str | None, prune: float | None = None) -> dict:
    """What an app needs besides the model: input layout and normalisation, the matcher and its threshold."""
    record, preprocess = loaded.record, loaded.preprocess
    height, width = preprocess["image_size"]
    calibration = (record.get("calibrations") or {}).get(matcher_name(record))
    info = {
        "model": model_file,
        "format": fmt,
        "quantization": quantize or "none (float32)",
        "pruning": f"{prune:.0%} of conv/linear weights zeroed by magnitude" if prune else "none",
        "source_checkpoint": str(loaded.path.resolve()),
        "input": {
            "name": "images",
            "shape": ["batch", preprocess["channels"], height, width],
            "dtype": "float32",
            "layout": "NCHW",
            "channels": "RGB" if preprocess["channels"] == 3 else "grey",
            "resize_to": [height, width],
            "normalisation": preprocess["normalisation"],
        },
        "output": {
            "name": "embeddings",
            "shape": ["batch", record["net"]["embedding_dim"]],
            "note": "L2-normalised embedding",
        },
        "matcher": matcher_name(record),
        "threshold": calibration["threshold"] if calibration else None,
        "threshold_note": (
            f"calibrated on validation identities at FAR {calibration.get('target_far')}"
            if calibration
            else "no calibrated threshold in the checkpoint: run metric.calibrate"
        ),
    }
    info["face"] = face_steps(face_spec(preprocess), (height, width))
    if info["matcher"] == "logistic":  # the head is a few numbers: ship them instead of a second model
        state = loaded.checkpoint["state_dict"]
        info["head"] = {
            **(record.get("head") or {}),
            "weight": state["head.weight"].tolist(),
            "bias": float(state["head.bias"]),
        }
    return info


def face_steps(spec: dict, size: tuple[int, int]) -> dict:
    """The face front end an app must run before the model, as recorded in the checkpoint, with the target
    points of the alignment in output pixels so it can be reproduced on a phone."""
    if spec.get("name", "none") == "none":
        return {**spec, "steps": "none: the model expects a face crop as in training, resized to the input size"}
    height, width = size
    which = "the one nearest the photo's centre" if spec.get("select") == "centre" else "the largest"
    warp = (
        "warp the photo by the similarity transform (rotation, uniform scale, shift; least squares) that maps "
        f"those points onto `template_points` in a {width}x{height} output, bilinear"
    )
    if spec["name"] == "mtcnn":
        names = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
        points = template_points(size, spec["margin"], range(5), TEMPLATES["arcface"])
        steps = (
            f"detect faces with MTCNN (PNet, RNet, ONet of the weight store; faces from {spec['min_face']} px, "
            f"thresholds {spec['thresholds']}, pyramid factor {spec['factor']}) and take {which}; its 5 landmarks "
            f"are the eye centres, the nose tip and the mouth corners; {warp}"
        )
    else:
        names = ("left_eye", "right_eye", "nose")
        points = template_points(size, spec["margin"], TEMPLATE_ROWS, TEMPLATES[spec.get("template", "arcface")])
        steps = (
            f"detect faces (dlib {spec['detector']}, upsample {spec['upsample']}) and take {which}; find dlib's "
            "5 landmarks; take the centre of each eye (the mean of its two corners) and the nose base; " + warp
        )
    return {
        **spec,
        "steps": steps,
        "template_points": {name: point.round(3).tolist() for name, point in zip(names, points)},
    }


def run_export(cfg: DictConfig) -> dict:
    """Export the checkpoint into the run directory: model, sidecar and export_report.json (returned)."""
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r} is not one of {', '.join(FORMATS)}.")
    if cfg.quantize not in (None, "int8"):
        raise ConfigError(f"quantize={cfg.quantize!r}: use quantize=int8 or leave it null.")
    if cfg.quantize and cfg.format != "onnx":
        raise ConfigError("quantize=int8 runs through ONNX Runtime: use it with format=onnx.")
    check_calibration(cfg.int8_calibration, cfg.int8_percentile)
    prune = cfg.get("prune")
    if prune is not None and (isinstance(prune, bool) or not isinstance(prune, (int, float)) or not 0 < prune < 1):
        raise ConfigError(
            f"prune={prune!r}: give the share of weights to zero, between 0 and 1 (e.g. prune=0.5), or leave it null."
        )
    # the datamodule only for int8 (training images calibrate it) and pruning (the test EER before and after)
    needs_data = bool(cfg.quantize) or prune is not None
    loaded = load_for_eval(
        cfg.ckpt,
        datamodule=cfg.datamodule if needs_data else None,
        face_override=False,
        needs_torch=f"format={cfg.format} export (it traces a torch net)",
    )
    net = loaded.net.eval()
    example = torch.zeros(1, loaded.preprocess["channels"], *loaded.preprocess["image_size"])
    pruned = compare_pruned(net, loaded.datamodule, prune) if prune is not None else {}
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / f"model{FORMATS[cfg.format]}"
    if cfg.format == "onnx":
        export_onnx(net, example, model_path, cfg.opset)
    else:
        export_torchscript(net, example, model_path)
    report = {
        "model": str(model_path),
        **size_report(net, example),
        "file_mb": model_path.stat().st_size / 2**20,
        **pruned,
    }
    final = model_path
    if cfg.quantize:
        final = out_dir / "model.int8.onnx"
        report.update(
            compare_int8(
                loaded.datamodule, model_path, final, cfg.calibration_images, cfg.int8_calibration, cfg.int8_percentile
            )
        )
    (out_dir / f"{final.name}.json").write_text(
        json.dumps(sidecar(loaded, final.name, cfg.format, cfg.quantize, prune), indent=2)
    )
    (out_dir / "export_report.json").write_text(json.dumps(report, indent=2))
    return report


def eer_on_test(model: Model, datamodule: IdentityDataModule) -> float:
    """The test EER of any model the embedding loop runs, scored by cosine (whatever the checkpoint's matcher)."""
    test = datamodule.splits["test"]
    return embeddings_eer(embed_images(model, test.images), test.labels, datamodule.max_impostor_pairs)


def compare_pruned(net: torch.nn.Module, datamodule: IdentityDataModule, sparsity: float) -> dict:
    """Magnitude-prune `net` in place (no fine-tuning); the test EER before and after, and the gzip-compressed
    weight size before and after (a dense file keeps its size: zeros only pay off compressed or in sparse kernels)."""
    dense_eer, dense_gzip = eer_on_test(net, datamodule), gzip_weight_mb(net)
    stats = prune_magnitude(net, sparsity)
    pruned_eer, pruned_gzip = eer_on_test(net, datamodule), gzip_weight_mb(net)
    return {
        **stats,
        "prune_requested": sparsity,
        "test_eer_dense": dense_eer,
        "test_eer_pruned": pruned_eer,
        "prune_eer_change_points": 100 * (pruned_eer - dense_eer),
        "gzip_mb_dense": dense_gzip,
        "gzip_mb_pruned": pruned_gzip,
        "prune_gzip_ratio": dense_gzip / pruned_gzip,
    }


def compare_int8(
    datamodule: IdentityDataModule,
    fp32: Path,
    int8: Path,
    calibration_images: int,
    method: str = "minmax",
    percentile: float = 99.99,
) -> dict:
    """Quantize on training images, then the size ratio and the test EER of both models under ONNX Runtime."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("quantize=int8 needs onnxruntime: pip install -e '.[export]'") from None
    train = datamodule.splits["train"].images
    picks = np.random.default_rng(0).choice(len(train), min(calibration_images, len(train)), replace=False)
    quantize_int8(fp32, int8, train[np.sort(picks)], method, percentile)
    eers = {}
    for name, path in (("float32", fp32), ("int8", int8)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        eers[name] = eer_on_test(onnx_model(session), datamodule)
    return {
        "int8_model": str(int8),
        "int8_file_mb": int8.stat().st_size / 2**20,
        "size_ratio": fp32.stat().st_size / int8.stat().st_size,
        "test_eer_float32": eers["float32"],
        "test_eer_int8": eers["int8"],
        "eer_change_points": 100 * (eers["int8"] - eers["float32"]),
        "calibration_images": int(len(picks)),
        "int8_calibration": method if method == "minmax" else f"percentile {percentile:g}",
    }


def format_report(report: dict) -> str:
    lines = [
        f"parameters        : {report['parameters']:,}",
        f"size (float32)    : {report['size_mb_float32']:.2f} MB (file {report['file_mb']:.2f} MB)",
        f"MACs per image    : {report['macs_per_image'] / 1e6:.1f} M",
        f"model             : {report['model']}",
    ]
    if "prune_sparsity" in report:
        lines += [
            f"pruned            : {report['prune_sparsity']:.1%} of {report['prunable_weights']:,} conv/linear "
            f"weights are zero; gzip {report['gzip_mb_dense']:.2f} -> {report['gzip_mb_pruned']:.2f} MB "
            f"({report['prune_gzip_ratio']:.2f}x smaller)",
            f"test EER          : dense {report['test_eer_dense']:.4f}, pruned {report['test_eer_pruned']:.4f} "
            f"({report['prune_eer_change_points']:+.2f} points)",
        ]
    if "int8_model" in report:
        lines += [
            f"int8 model        : {report['int8_model']} ({report['int8_file_mb']:.2f} MB, "
            f"{report['size_ratio']:.2f}x smaller)",
            f"test EER          : float32 {report['test_eer_float32']:.4f}, int8 {report['test_eer_int8']:.4f} "
            f"({report['eer_change_points']:+.2f} points)",
        ]
    return "\n".join(lines)
