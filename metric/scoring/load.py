"""`load_for_eval`: a checkpoint's net, head and matcher, and optionally its data, checked against each other.

Every entry point that works from a checkpoint (evaluate, calibrate, attack, export, the verifier, the gallery,
a distillation teacher) loads through here: read the checkpoint, rebuild the model, choose the matcher by the
one rule, build the datamodule, and refuse data prepared differently from training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.base import IdentityDataModule
from datamodules.faces.frontend import FaceFrontEnd
from datamodules.faces.registry import front_end_from_spec
from metric.errors import build_from_config
from metric.model.checkpoint import (CHECKPOINT_KEY, build_model, check_same_preprocessing, face_spec,
                                     matcher_name, read_checkpoint, stored_calibration)
from metric.model.heads import LogisticDistanceHead
from metric.model.nets import EmbeddingNet
from metric.scoring.embed import embed_images
from metric.scoring.matchers import Matcher, build_matcher, make_matcher


@dataclass
class LoadedModel:
    """A checkpoint ready to embed and score, and (when asked for) the datamodule it is evaluated on."""

    path: Path
    checkpoint: dict
    net: EmbeddingNet
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
        return stored_calibration(self.checkpoint, self.matcher.name, self.path)

    def embed(self, images: np.ndarray, flip: bool = False) -> np.ndarray:
        return embed_images(self.net, images, flip=flip)

    def front_end(self) -> FaceFrontEnd:
        """The face front end the checkpoint was trained with, rebuilt from its record."""
        return front_end_from_spec(face_spec(self.preprocess))


def note_face_override(loaded: LoadedModel, front_end: FaceFrontEnd) -> None:
    """Say so when images are prepared by another face front end than the checkpoint's training used."""
    trained = face_spec(loaded.preprocess)
    if front_end.spec() != trained:
        print(f"note: images go through {front_end.describe()}; the checkpoint was trained with the front end "
              f"{trained}.")


def load_for_eval(ckpt: str | Path, matcher: Mapping | str | None = None, datamodule: Mapping | None = None,
                  stage: str = "test", calibrated: bool = False, face_override: bool = True) -> LoadedModel:
    """The checkpoint's model with a matcher: a `matcher` config node, a matcher name, or None for the rule of
    metric.model.checkpoint.matcher_name (then at the target FAR it was calibrated at). With a `datamodule`
    config node, the datamodule is built, set up for `stage` and checked against the checkpoint's preprocessing;
    the matcher, the datamodule's settings and (with `calibrated`) a stored threshold for the matcher are checked
    before any data is read. A datamodule node whose `face` is null gets the checkpoint's face front end; one that
    names another front end is used as asked (e.g. a model trained on crops, evaluated on photos through face=dlib),
    and the console says so; with face_override=False (what is stored back into the checkpoint or shipped:
    calibration, export) it is refused."""
    checkpoint = read_checkpoint(ckpt)
    net, head = build_model(checkpoint)
    record = checkpoint[CHECKPOINT_KEY]
    if isinstance(matcher, Mapping):
        chosen = build_matcher(matcher, head=head)
    else:
        name = matcher_name(record, matcher)
        target_far = (record.get("calibrations") or {}).get(name, {}).get("target_far", 0.001)
        chosen = make_matcher(name, head=head, target_far=target_far)
    loaded = LoadedModel(Path(ckpt), checkpoint, net, head, chosen)
    if calibrated:
        loaded.calibration()
    if datamodule is not None:
        if datamodule.get("face") is None:
            loaded.datamodule = build_from_config(datamodule, face=loaded.front_end())
        else:
            loaded.datamodule = build_from_config(datamodule)
        if face_override:
            note_face_override(loaded, loaded.datamodule.face)
        else:
            check_same_preprocessing(checkpoint, {**loaded.preprocess, "face": loaded.datamodule.face.spec()})
        loaded.datamodule.setup(stage)
        check_same_preprocessing(checkpoint, loaded.datamodule.preprocessing, face=False)
    return loaded
