"""metric.calibrate's pipeline: embed the validation identities with a checkpoint (or an outside embedder), calibrate
a matcher's threshold at its target FAR, and store it in the checkpoint or in a new calibrated bundle."""

from __future__ import annotations

import math
from pathlib import Path

from metric.errors import ConfigError
from metric.metrics.calibration import Calibration, calibrate
from metric.model.checkpoint import CHECKPOINT_KEY, read_checkpoint, store_calibration, write_checkpoint
from metric.scoring.load import load_for_eval, model_label
from metric.scoring.pairs import pair_scores


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
