"""The checkpoint format: what metric.train adds to a Lightning checkpoint, read safely (weights only), rebuilt into
a net, and the calibrated thresholds stored in it atomically.

The record under CHECKPOINT_KEY names no Python paths (the net is rebuilt from its spec), so moving code never
breaks a checkpoint; format 1 and 2 records are read as they were written (tests/model/test_checkpoint_compat.py
loads one written before the code was reorganised).
"""

from __future__ import annotations

from pathlib import Path

import torch

from datamodules.atomic import write_file_atomically
from datamodules.normalisation import NORMALISATION
from metric.errors import ConfigError
from metric.model.adapted import AdaptedNet
from metric.model.embedders import ExternalEmbedder, embedder_from_spec
from metric.model.heads import LogisticDistanceHead
from metric.model.liveness_net import LivenessNet
from metric.model.nets import EmbeddingNet

CHECKPOINT_KEY = "metric_faces"  # what this project adds to a Lightning checkpoint
# 2: the net spec may hold pool / input_size / dropout (written only when it does); 3: the net is an outside
# embedder or an adapted one (its spec has a `kind`, metric.model.embedders); 4: a liveness model (`task`);
# 5: the net spec may hold `projection` (none: a pretrained face backbone's own output, model=mobilefacenet)
CHECKPOINT_FORMAT = 5
TASKS = ("verification", "liveness")  # what a checkpoint's model does; records without `task` verify faces
WRONG_TASK = {
    "verification": "{name}={path!r} is a liveness (presentation-attack detection) checkpoint of +experiment=liveness, "
    "but this needs a face-verification checkpoint (+experiment=triplet, a calibrated bundle, ...). A "
    "liveness model guards verification: pass it as --liveness <ckpt> to metric.gallery, or "
    "Verifier.from_checkpoint(..., liveness=<ckpt>).",
    "liveness": "{name}={path!r} is a face-verification checkpoint, but the liveness gate needs a presentation-attack "
    "detection checkpoint, written by `python -m metric.train +experiment=liveness`.",
}


def record_format(spec: dict) -> int:
    """The oldest format whose readers rebuild this net spec, so older readers still read every file they can."""
    if "projection" in spec:
        return 5
    if spec.get("kind") == "liveness":
        return 4
    if "kind" in spec:
        return 3
    return 2 if set(spec) - {"backbone", "embedding_dim", "in_chans"} else 1


def checkpoint_record(net, head: LogisticDistanceHead | None, preprocess: dict, default_matcher: str) -> dict:
    """Everything needed to rebuild the model from the file alone, without Hydra or pickled objects."""
    spec = net.spec()
    return {
        "format": record_format(spec),
        "net": spec,
        "head": head.spec() if head is not None else None,
        "preprocess": {**preprocess, "normalisation": NORMALISATION},
        "default_matcher": default_matcher,
    }


def liveness_record(net, preprocess: dict) -> dict:
    """A liveness model's record: its net spec and preprocessing; metric.train adds the calibrated threshold."""
    return {
        "format": record_format(net.spec()),
        "task": "liveness",
        "net": net.spec(),
        "preprocess": {**preprocess, "normalisation": NORMALISATION},
    }


def read_checkpoint(path: str | Path, task: str = "verification", name: str = "ckpt") -> dict:
    """The checkpoint's dict, loaded with weights_only=True; a clear error for a missing, corrupt or foreign file,
    or for a model of another task (`name` is the setting that gave the path, for the messages)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{name}={str(path)!r}: no such file. Give a checkpoint written by metric.train.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(
            f"{name}={str(path)!r} cannot be read as a checkpoint ({type(error).__name__}). It is corrupt, or not a "
            "PyTorch file; only weights are ever loaded, never pickled objects."
        ) from None
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or "state_dict" not in checkpoint:
        raise ConfigError(
            f"{name}={str(path)!r} was not written by metric.train (it has no '{CHECKPOINT_KEY}' record)."
        )
    if meta.get("format", 0) > CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{name}={str(path)!r} has checkpoint format {meta['format']}, newer than this version reads "
            f"({CHECKPOINT_FORMAT}); upgrade metric-faces."
        )
    normalisation = meta.get("preprocess", {}).get(
        "normalisation", NORMALISATION
    )  # absent only if built without preprocess; it is the only one there has been
    if normalisation != NORMALISATION:
        raise ConfigError(
            f"{name}={str(path)!r} records the input normalisation {normalisation!r}, which this version "
            f"does not apply (it applies {NORMALISATION!r})."
        )
    if meta.get("task", "verification") != task:
        raise ConfigError(WRONG_TASK[task].format(name=name, path=str(path)))
    return checkpoint


def face_spec(preprocess: dict) -> dict:
    """The face front end a preprocessing record names; records written before the front end existed mean none,
    and dlib records written before `template` existed used the arcface layout."""
    spec = dict(preprocess.get("face") or {"name": "none"})
    if spec["name"] == "dlib":
        spec.setdefault("template", "arcface")
    return spec


def check_same_preprocessing(checkpoint: dict, now: dict, face: bool = True) -> None:
    """Stop when a datamodule prepares images differently (size, channels and, with `face`, the face front end)
    from the checkpoint's training."""
    trained = checkpoint[CHECKPOINT_KEY]["preprocess"]
    if face and face_spec(trained) != face_spec(now):
        raise ConfigError(
            f"the checkpoint was trained on faces prepared by the front end {face_spec(trained)}, but this run "
            f"prepares them with {face_spec(now)}: set `face` as in that training (calibrate and export apply the "
            "checkpoint's front end when `face` is unset)."
        )
    if (trained.get("image_size"), trained.get("channels")) != (now["image_size"], now["channels"]):
        raise ConfigError(
            f"the checkpoint was trained on {trained.get('channels')}-channel images of size "
            f"{trained.get('image_size')}, but this datamodule gives {now['channels']}-channel {now['image_size']}: "
            "set datamodule.image_size and datamodule.channels as in training."
        )


def bundle_checkpoint(embedder: ExternalEmbedder, preprocess: dict, default_matcher: str = "cosine") -> dict:
    """A frozen outside embedder in the checkpoint format: no trainable weights, its spec (with the model file's
    sha256) and the preprocessing (face front end included) it is fed with; metric.calibrate adds thresholds."""
    return {"state_dict": {}, CHECKPOINT_KEY: checkpoint_record(embedder, None, preprocess, default_matcher)}


def write_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Save a checkpoint dict atomically (a new file renamed into place)."""
    write_file_atomically(Path(path), lambda tmp: torch.save(checkpoint, tmp))


def module_state(state: dict, prefix: str) -> dict:
    """The weights of one submodule (`net.`, `head.`) of a Lightning state dict, with the prefix dropped."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def build_liveness_net(checkpoint: dict) -> LivenessNet:
    """The liveness net a liveness checkpoint's record names, with its weights, in eval mode."""
    net = LivenessNet.from_spec(checkpoint[CHECKPOINT_KEY]["net"])
    net.load_state_dict(module_state(checkpoint["state_dict"], "net."))
    return net.eval()


def build_net(spec: dict, state: dict):
    """The net a record's spec names (a timm EmbeddingNet, an outside embedder, or an adapted one) with its weights."""
    kind = spec.get("kind")
    weights = module_state(state, "net.")
    if kind == "adapted":  # only the head's weights are stored (an adapt run's module trains the head alone)
        net = AdaptedNet.from_spec(spec)
        net.projection.load_state_dict(weights)
        return net
    if kind is not None:
        return embedder_from_spec(spec)
    net = EmbeddingNet(**spec)
    net.load_state_dict(weights)
    return net


def build_model(checkpoint: dict) -> tuple[EmbeddingNet, LogisticDistanceHead | None]:
    """Rebuild the net (and the head, if trained with one) from a checkpoint's record and weights, in eval mode."""
    meta = checkpoint[CHECKPOINT_KEY]
    state = checkpoint["state_dict"]
    net = build_net(meta["net"], state)
    head = None
    if meta.get("head"):
        head = LogisticDistanceHead(**meta["head"])
        head.load_state_dict(module_state(state, "head."))
        head.eval()
    return net.eval(), head


def matcher_name(record: dict, requested: str | None = None) -> str:
    """The one rule for which matcher scores a checkpoint's embeddings: the one requested, else the default chosen
    at calibration (training's, or `metric.calibrate make_default=true`), else its module's own default."""
    return requested or record.get("calibrated_matcher") or record["default_matcher"]


def stored_calibration(checkpoint: dict, matcher: str | None, path: str | Path) -> dict:
    """The calibration stored for `matcher` (None: the rule of matcher_name); a clear error when there is none."""
    meta = checkpoint[CHECKPOINT_KEY]
    calibrations = meta.get("calibrations") or {}
    name = matcher_name(meta, matcher)
    if name not in calibrations:
        have = ", ".join(calibrations) or "none"
        raise ConfigError(
            f"ckpt={str(path)!r} holds no threshold calibrated for matcher={name} (calibrated: {have}). "
            f"Run: python -m metric.calibrate ckpt={path} matcher={name} datamodule=<the training data>, "
            "or evaluate with threshold_from=val."
        )
    return calibrations[name]


def store_calibration(path: str | Path, calibration: dict, make_default: bool = False) -> None:
    """Add a matcher's calibration to the checkpoint: a new file renamed over the old, so a failure loses nothing."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    meta = checkpoint[CHECKPOINT_KEY]
    meta.setdefault("calibrations", {})[calibration["matcher"]] = calibration
    if make_default or "calibrated_matcher" not in meta:
        meta["calibrated_matcher"] = calibration["matcher"]
    write_checkpoint(path, checkpoint)


def store_liveness_threshold(path: str | Path, threshold: dict) -> None:
    """Store the liveness threshold calibrated on validation in a liveness checkpoint, atomically."""
    checkpoint = read_checkpoint(path, task="liveness")
    checkpoint[CHECKPOINT_KEY]["threshold"] = threshold
    write_checkpoint(path, checkpoint)
