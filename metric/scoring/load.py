"""`load_for_eval`: a checkpoint's net, head and matcher, and optionally its data, checked against each other.

Every entry point that works from a checkpoint (evaluate, calibrate, attack, export, the verifier, the gallery,
a distillation teacher) loads through here: read the checkpoint, rebuild the model, choose the matcher by the
one rule, build the datamodule, and refuse data prepared differently from training. A frozen outside embedder
(`model=dlib|onnx`, no checkpoint) becomes an in-memory checkpoint (`metric.scoring.pretrained.embedder_checkpoint`)
and takes the same path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.base import IdentityDataModule
from datamodules.faces.frontend import FaceFrontEnd
from datamodules.faces.registry import front_end_from_spec
from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError
from metric.model.adapted import AdaptedNet, outside_embedder, require_gradients
from metric.model.checkpoint import (
    CHECKPOINT_KEY,
    build_model,
    check_same_preprocessing,
    face_spec,
    matcher_name,
    read_checkpoint,
    stored_calibration,
)
from metric.model.embedders import ExternalEmbedder
from metric.model.heads import LogisticDistanceHead
from metric.model.nets import EmbeddingNet
from metric.scoring.embed import embed_images
from metric.scoring.matchers import Matcher, build_matcher, make_matcher
from metric.scoring.pretrained import Pretrained as Pretrained  # re-exported: imported from here
from metric.scoring.pretrained import (
    build_embedder,
    embedder_checkpoint,
    embedder_datamodule,
    embedder_front_end,
    pretrained_net_checkpoint,
    sized_datamodule,
)
from metric.scoring.pretrained import model_label as model_label  # re-exported: imported from here
from metric.scoring.pretrained import pretrained_model as pretrained_model  # re-exported: imported from here


@dataclass
class LoadedModel:
    """A checkpoint ready to embed and score, and (when asked for) the datamodule it is evaluated on."""

    path: Path | None  # None: an outside embedder used without a calibrated bundle
    checkpoint: dict
    net: EmbeddingNet | ExternalEmbedder | AdaptedNet
    head: LogisticDistanceHead | None
    matcher: Matcher
    datamodule: IdentityDataModule | None = None

    @property
    def record(self) -> dict:
        return self.checkpoint[CHECKPOINT_KEY]

    @property
    def preprocess(self) -> dict:
        return self.record["preprocess"]

    def calibration(self) -> dict:
        """The threshold stored for this matcher, with what it achieved on validation; a clear error when none is."""
        if self.path is None:
            kind = self.record["net"].get("kind") or self.record["net"]["backbone"]
            raise ConfigError(
                f"model={kind} has no threshold until it is calibrated on your people: run python -m "
                f"metric.calibrate model={kind} datamodule=<data> ckpt=<bundle to write> (then use "
                "ckpt=<bundle>), or evaluate with threshold_from=val."
            )
        return stored_calibration(self.checkpoint, self.matcher.name, self.path)

    def embed(self, images: np.ndarray, flip: bool = False) -> np.ndarray:
        return embed_images(self.net, images, flip=flip)

    def front_end(self) -> FaceFrontEnd:
        """The face front end the checkpoint was trained with, rebuilt from its record."""
        return front_end_from_spec(face_spec(self.preprocess))


def asked_front_end(loaded: LoadedModel, face: Mapping) -> FaceFrontEnd:
    """The front end a `face` config node asks for, with the settings the checkpoint's outside embedder needs."""
    outside = outside_embedder(loaded.net)
    return embedder_front_end(outside, face) if outside is not None else build_from_config(face)


def load_matcher(checkpoint: dict, matcher: Mapping | str | None, head: LogisticDistanceHead | None) -> Matcher:
    """A `matcher` config node, a matcher name, or None for the checkpoint's rule, at the FAR it was calibrated at."""
    if isinstance(matcher, Mapping):
        return build_matcher(matcher, head=head)
    record = checkpoint[CHECKPOINT_KEY]
    name = matcher_name(record, matcher)
    target_far = (record.get("calibrations") or {}).get(name, {}).get("target_far", 0.001)
    return make_matcher(name, head=head, target_far=target_far)


def note_face_override(loaded: LoadedModel, front_end: FaceFrontEnd) -> None:
    """Say so when images are prepared by another face front end than the checkpoint's training used."""
    trained = face_spec(loaded.preprocess)
    if front_end.spec() != trained:
        print(
            f"note: images go through {front_end.describe()}; the checkpoint was trained with the front end {trained}."
        )


def load_for_eval(
    ckpt: str | Path | None,
    matcher: Mapping | str | None = None,
    datamodule: Mapping | None = None,
    stage: str = "test",
    calibrated: bool = False,
    face_override: bool = True,
    model: Mapping | None = None,
    face: Mapping | None = None,
    needs_torch: str | None = None,
) -> LoadedModel:
    """The checkpoint's model with a matcher: a `matcher` config node, a matcher name, or None for the rule of
    metric.model.checkpoint.matcher_name (then at the target FAR it was calibrated at). With a `datamodule`
    config node, the datamodule is built, set up for `stage` and checked against the checkpoint's preprocessing;
    the matcher, the datamodule's settings and (with `calibrated`) a stored threshold for the matcher are checked
    before any data is read. A datamodule node whose `face` is null gets the checkpoint's face front end; one that
    names another front end is used as asked (e.g. a model trained on crops, evaluated on photos through face=dlib),
    and the console says so; with face_override=False (what is stored back into the checkpoint or shipped:
    calibration, export) it is refused.

    With `model` (a model=dlib|onnx|mobilefacenet node) and no ckpt, that pretrained model is the model, fed through
    `face` (or the datamodule's `face`) at its own input size. `needs_torch` names what needs a differentiable torch net
    (an attack, export): an outside embedder is then refused before any data is read."""
    if model is not None and ckpt is None and issubclass(locate_class(model, "model"), EmbeddingNet):
        net, front_end, checkpoint = pretrained_net_checkpoint(
            model, face if datamodule is None else datamodule.get("face")
        )
        loaded = LoadedModel(None, checkpoint, net, None, load_matcher(checkpoint, matcher, None))
        if calibrated:
            loaded.calibration()
        if datamodule is not None:
            loaded.datamodule = sized_datamodule(datamodule, net.backbone_name, loaded.preprocess, front_end)
            loaded.datamodule.setup(stage)
        return loaded
    if model is not None and ckpt is None:
        embedder = build_embedder(model)
        if needs_torch:
            require_gradients(embedder, needs_torch)
        front_end = embedder_front_end(embedder, face if datamodule is None else datamodule.get("face"))
        checkpoint = embedder_checkpoint(embedder, front_end)
        loaded = LoadedModel(None, checkpoint, embedder, None, load_matcher(checkpoint, matcher, None))
        if calibrated:
            loaded.calibration()
        if datamodule is not None:
            loaded.datamodule = embedder_datamodule(datamodule, embedder, front_end)
            loaded.datamodule.setup(stage)
        return loaded
    if ckpt is None:
        raise ConfigError(
            "give a checkpoint, ckpt=<file> (a metric.train checkpoint or a calibrated bundle), or a "
            "pretrained embedder, model=dlib or model=onnx model.path=<file>."
        )
    checkpoint = read_checkpoint(ckpt)
    net, head = build_model(checkpoint)
    if needs_torch:
        require_gradients(net, needs_torch)
    loaded = LoadedModel(Path(ckpt), checkpoint, net, head, load_matcher(checkpoint, matcher, head))
    if calibrated:
        loaded.calibration()
    return loaded if datamodule is None else attach_datamodule(loaded, datamodule, stage, face_override)


def command_line_keys() -> set[str] | None:
    """The keys the user set on this run's command line (Hydra's task overrides); None outside a Hydra run."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().overrides.task
    except (ValueError, ImportError):
        return None
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def adopted_input(datamodule: Mapping, preprocess: Mapping) -> dict:
    """The checkpoint's image size and channels for a datamodule whose own were not set on the command line (a
    value the user set is kept, and the preprocessing check then refuses it if it differs); one note says so."""
    explicit = command_line_keys()
    if explicit is None:
        return {}
    adopted = {}
    for key in ("image_size", "channels"):
        if key in datamodule and f"datamodule.{key}" not in explicit:
            value = list(datamodule[key]) if key == "image_size" else datamodule[key]
            if value != preprocess[key]:
                adopted[key] = list(preprocess[key]) if key == "image_size" else preprocess[key]
    if adopted:
        print(
            "note: the datamodule reads images as the checkpoint was trained: "
            + ", ".join(f"datamodule.{k}={v}" for k, v in adopted.items())
            .replace(" ", "")
            .replace(",datamodule.", ", datamodule.")
            + "."
        )
    return adopted


def attach_datamodule(
    loaded: LoadedModel, datamodule: Mapping, stage: str = "test", face_override: bool = True
) -> LoadedModel:
    """A checkpoint's model (load_for_eval without a datamodule) given the datamodule of the `datamodule` node, set
    up for `stage` and checked against the checkpoint's preprocessing, as load_for_eval(..., datamodule=) does."""
    front_end = loaded.front_end() if datamodule.get("face") is None else asked_front_end(loaded, datamodule.face)
    outside = outside_embedder(loaded.net)
    if outside is not None:  # an outside (or adapted) embedder reads one fixed input size
        loaded.datamodule = sized_datamodule(datamodule, outside.kind, loaded.preprocess, front_end)
    else:
        loaded.datamodule = build_from_config(
            datamodule, face=front_end, **adopted_input(datamodule, loaded.preprocess)
        )
    if face_override:
        note_face_override(loaded, loaded.datamodule.face)
    else:
        check_same_preprocessing(loaded.checkpoint, {**loaded.preprocess, "face": loaded.datamodule.face.spec()})
    loaded.datamodule.setup(stage)
    check_same_preprocessing(loaded.checkpoint, loaded.datamodule.preprocessing, face=False)
    return loaded
