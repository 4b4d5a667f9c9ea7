"""Threshold calibration at a target FAR on validation identities, with an honest note when the data cannot support
it; and `calibrate_checkpoint`, which adds a matcher's calibration to a trained checkpoint (metric.calibrate)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from metric.errors import ConfigError
from metric.metrics import verification as V
from metric.model.checkpoint import CHECKPOINT_KEY, read_checkpoint, store_calibration, write_checkpoint
from metric.scoring.load import load_for_eval, model_label
from metric.scoring.matchers import check_target_far
from metric.scoring.pairs import pair_scores


@dataclass(frozen=True)
class Calibration:
    """The threshold to ship, for one matcher, and what it achieved on the validation pairs."""

    matcher: str
    threshold: float
    target_far: float
    calibrated_far: float  # the target actually used: target_far, or the lowest FAR the data supports
    val_far: float
    val_frr: float
    val_genuine_pairs: int
    val_impostor_pairs: int
    warning: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(scores: np.ndarray, genuine: np.ndarray, target_far: float, matcher: str) -> Calibration:
    """The loosest threshold whose validation FAR is <= target_far (or the lowest supported FAR, with a warning)."""
    target_far = check_target_far(target_far)
    curve = V.roc(scores, genuine)
    lowest = V.min_supported_far(curve.n_impostor)
    used = target_far
    warning = None
    if target_far < lowest:
        used = lowest
        warning = (
            f"the validation split has {curve.n_impostor} impostor pairs; FAR={target_far:g} needs at least "
            f"{math.ceil(3 / target_far)}. Calibrated at the lowest FAR it supports, {lowest:.2g}, instead. "
            "Add validation identities to reach the target."
        )
    threshold, far, frr = V.threshold_at_far(curve, used)
    return Calibration(
        matcher=matcher,
        threshold=threshold,
        target_far=target_far,
        calibrated_far=used,
        val_far=far,
        val_frr=frr,
        val_genuine_pairs=curve.n_genuine,
        val_impostor_pairs=curve.n_impostor,
        warning=warning,
    )


def bundle_path(cfg) -> Path:
    """Where `metric.calibrate model=...` writes (or adds to) its bundle: ckpt, else <run dir>/<kind>.ckpt."""
    if cfg.get("ckpt"):
        return Path(cfg.ckpt)
    return Path(cfg.paths.output_dir) / f"{model_label(cfg.model)}.ckpt"


def check_same_bundle(path: Path, checkpoint: dict) -> None:
    """An existing file at a bundle's path is only added to when it is the same embedder, fed the same way."""
    existing = read_checkpoint(path)[CHECKPOINT_KEY]
    new = checkpoint[CHECKPOINT_KEY]
    if existing["net"] != new["net"] or existing["preprocess"] != new["preprocess"]:
        raise ConfigError(
            f"ckpt={str(path)!r} already holds another model (or one fed differently): it is left as it "
            "is. Give a new file name with ckpt=<bundle.ckpt>."
        )


def calibrate_checkpoint(cfg) -> tuple[Calibration, Path]:
    """Embed the validation identities with the checkpoint's net, calibrate `cfg.matcher` at its target FAR, and
    store the result in the checkpoint (`cfg.make_default`: the matcher used unless told otherwise). With
    `model=dlib|onnx`, the embedder, its front end and the calibration are written as a bundle in the checkpoint
    format (or added to the same bundle). Returns the calibration and the file it is stored in."""
    allow = cfg.get("allow_unsupported_far", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"allow_unsupported_far={allow!r} must be true or false.")
    model = cfg.get("model")
    path = bundle_path(cfg) if model is not None else Path(cfg.ckpt) if cfg.get("ckpt") else None
    if path is None:
        raise ConfigError("give ckpt=<checkpoint> to calibrate, or model=dlib|onnx to write a calibrated bundle.")
    # the threshold is stored in the checkpoint, which the Verifier uses with the training front end
    loaded = load_for_eval(
        None if model is not None else path,
        matcher=cfg.matcher,
        datamodule=cfg.datamodule,
        stage="validate",
        face_override=False,
        model=model,
    )
    if model is not None and path.exists():
        check_same_bundle(path, loaded.checkpoint)
    val = loaded.datamodule.splits["val"]
    scores, genuine = pair_scores(
        loaded.embed(val.images),
        val.labels,
        max_impostor_pairs=loaded.datamodule.max_impostor_pairs,
        score_block=loaded.matcher.numpy_block,
    )
    calibration = calibrate(scores, genuine, loaded.matcher.target_far, loaded.matcher.name)
    if calibration.warning and not allow:
        raise ConfigError(
            f"the validation split has {calibration.val_impostor_pairs} impostor pairs; FAR={calibration.target_far:g} "
            f"needs at least {math.ceil(3 / calibration.target_far)}: nothing was written. Add validation identities, "
            f"set matcher.target_far={calibration.calibrated_far:.2g} (the lowest these pairs support), or "
            "allow_unsupported_far=true to store the threshold at that FAR with a warning."
        )
    if model is not None and not path.exists():
        record = loaded.checkpoint[CHECKPOINT_KEY]
        record["calibrations"] = {calibration.matcher: calibration.to_dict()}
        record["calibrated_matcher"] = calibration.matcher
        path.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(path, loaded.checkpoint)
    else:
        store_calibration(path, calibration.to_dict(), make_default=cfg.make_default)
    return calibration, path
