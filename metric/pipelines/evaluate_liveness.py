"""Cross-dataset liveness evaluation: a liveness checkpoint scored on another dataset's split, at its own stored
threshold, with the report training writes (ISO/IEC 30107-3 rates, EER, BPCER at APCER 1% and 5%, breakdowns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from datamodules.faces.registry import front_end_from_spec
from datamodules.liveness import liveness_targets
from datamodules.normalisation import to_model_input
from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError
from metric.metrics.liveness import pad_summary
from metric.model.checkpoint import CHECKPOINT_KEY, build_liveness_net, face_spec, read_checkpoint
from metric.model.faceantispoofing import NAME as PEER
from metric.model.faceantispoofing import PREPROCESS, FaceAntiSpoofing
from metric.model.faceantispoofing import THRESHOLD as PEER_THRESHOLD
from metric.report.liveness import TARGET_APCERS, breakdown_tables, write_liveness_report


def checkpoint_task(path: str | Path) -> str:
    """The task a checkpoint's record names (verification when it names none, or when the file cannot be read: the
    verification loader then says why)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return "verification"
    meta = checkpoint.get(CHECKPOINT_KEY, {}) if isinstance(checkpoint, dict) else {}
    return meta.get("task", "verification")


def liveness_scores(net, images: np.ndarray, batch: int = 256) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [net.liveness(to_model_input(images[i : i + batch])).numpy() for i in range(0, len(images), batch)]
        ).astype(np.float64)


def liveness_report(cfg: DictConfig, out: Path) -> tuple[dict, dict[str, list[dict]]]:
    """(summary, breakdown tables) of the checkpoint on `cfg.split` of `cfg.datamodule`, read at the checkpoint's
    image size, channels and face front end; the files of training's liveness report are written into `out`."""
    if str(cfg.ckpt) == PEER:
        net = FaceAntiSpoofing()
        preprocess, threshold, target_apcer = PREPROCESS, PEER_THRESHOLD, None
    else:
        checkpoint = read_checkpoint(cfg.ckpt, task="liveness", name="ckpt")
        meta = checkpoint[CHECKPOINT_KEY]
        if not meta.get("threshold"):
            raise ConfigError(
                f"ckpt={cfg.ckpt!r} holds no calibrated liveness threshold: use the best checkpoint of "
                "a finished `metric.train +experiment=liveness` run."
            )
        net, preprocess = build_liveness_net(checkpoint), meta["preprocess"]
        threshold, target_apcer = float(meta["threshold"]["threshold"]), meta["threshold"].get("target_apcer")
    front_end = front_end_from_spec(face_spec(preprocess))
    if cfg.get("face") is not None:  # asked for: e.g. face=none on renders that are already face crops
        own, front_end = front_end.describe(), build_from_config(cfg.face)
        if front_end.describe() != own:
            print(f"note: the images are read through {front_end.describe()}, not the model's own {own}.")
    if getattr(locate_class(cfg.datamodule, "datamodule"), "task", None) != "liveness":
        raise ConfigError(
            f"ckpt={cfg.ckpt!r} is a liveness model: evaluate it on a liveness dataset (datamodule=nuaa, "
            "celeba_spoof or simulated_spoof), not on an identity one."
        )
    datamodule = build_from_config(
        cfg.datamodule, face=front_end, image_size=list(preprocess["image_size"]), channels=preprocess["channels"]
    )
    datamodule.setup("test")
    split = datamodule.splits[cfg.split]
    scored = (liveness_scores(net, split.images), liveness_targets(split))
    rates = pad_summary(scored[0], scored[1][:, 1], threshold, TARGET_APCERS)
    tables = breakdown_tables(scored, threshold, datamodule.breakdowns(split))
    out.mkdir(parents=True, exist_ok=True)
    write_liveness_report(out, scored, split.images, split.sources, threshold, tables)
    summary = {
        "protocol": "liveness",
        "task": "liveness",
        "checkpoint": str(cfg.ckpt),
        "split": cfg.split,
        "threshold": threshold,
        "threshold_source": "checkpoint",
        "target_apcer": target_apcer,
        **({"model": net.spec()} if str(cfg.ckpt) == PEER else {}),
        **{f"test_{key}": value for key, value in rates.items() if key != "threshold"},
        **{f"data_{key}": value for key, value in datamodule.notes.items()},
        "breakdowns": tables,
    }
    return summary, tables
