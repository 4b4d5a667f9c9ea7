"""Pretrained models used without a training checkpoint (model=dlib|onnx|mobilefacenet), their front end and input."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from datamodules.faces.frontend import FaceFrontEnd
from datamodules.normalisation import NORMALISATION
from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError
from metric.model.checkpoint import CHECKPOINT_KEY, bundle_checkpoint, checkpoint_record
from metric.model.embedders import ExternalEmbedder
from metric.model.nets import LOCAL_PRETRAINED, EmbeddingNet, check_face_input


def model_label(model: Mapping) -> str:
    """What a `model` node is called in messages and file names: an outside embedder's kind, else its backbone."""
    return getattr(locate_class(model, "model"), "kind", None) or str(model.get("backbone"))


def pretrained_net_checkpoint(model: Mapping, face: Mapping | None) -> tuple[EmbeddingNet, FaceFrontEnd, dict]:
    """A torch net pretrained on faces (model=mobilefacenet), fed through `face`, as an in-memory checkpoint with its
    weights (metric.calibrate writes it as a bundle); its input size and alignment are checked first."""
    backbone = model.get("backbone")
    if backbone not in LOCAL_PRETRAINED or not model.get("pretrained"):
        raise ConfigError(
            f"model.backbone={backbone} without pretrained face weights is not a face model yet: use "
            "its training checkpoint (ckpt=<file>), or a pretrained one: model=mobilefacenet, model=dlib "
            "or model=onnx model.path=<file>."
        )
    need = LOCAL_PRETRAINED[backbone]
    front_end = build_from_config(face) if face is not None else FaceFrontEnd()
    check_face_input(backbone, True, need["image_size"], need["channels"], front_end.spec())
    net = build_from_config(model, in_chans=need["channels"], input_size=list(need["image_size"])).eval()
    preprocess = {
        "image_size": list(need["image_size"]),
        "channels": need["channels"],
        "normalisation": NORMALISATION,
        "face": front_end.spec(),
    }
    checkpoint = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        CHECKPOINT_KEY: checkpoint_record(net, None, preprocess, "cosine"),
    }
    return net, front_end, checkpoint


@dataclass
class Pretrained:
    """A pretrained model ready to embed, outside any checkpoint: an outside embedder (dlib, onnx) or a torch net
    pretrained on faces (mobilefacenet), the front end it is fed through and the input size it reads; `spec` keys
    its cached embeddings (metric.scoring.feature_cache)."""

    model: EmbeddingNet | ExternalEmbedder
    spec: dict
    label: str
    front_end: FaceFrontEnd
    size: dict  # image_size, channels

    def datamodule(self, node: Mapping, **kwargs):
        return sized_datamodule(node, self.label, self.size, self.front_end, **kwargs)


def pretrained_model(model: Mapping, face: Mapping | None) -> Pretrained:
    """The pretrained model a `model` node names (model=dlib|onnx|mobilefacenet), fed through `face`."""
    if issubclass(locate_class(model, "model"), EmbeddingNet):
        net, front_end, checkpoint = pretrained_net_checkpoint(model, face)
        preprocess = checkpoint[CHECKPOINT_KEY]["preprocess"]
        backbone = net.backbone_name
        spec = {
            "net": net.spec(),
            "pretrained": LOCAL_PRETRAINED[backbone]["weights"],
            "sha256": pretrained_weights_sha256(backbone),
        }
        size = {"image_size": preprocess["image_size"], "channels": preprocess["channels"]}
        return Pretrained(net, spec, model_label(model), front_end, size)
    embedder = build_embedder(model)
    size = {"image_size": list(embedder.input_size), "channels": embedder.channels}
    return Pretrained(embedder, embedder.spec(), embedder.kind, embedder_front_end(embedder, face), size)


def pretrained_weights_sha256(backbone: str) -> dict:
    """The pinned sha256 of each weight-store file a pretrained backbone is read from."""
    from datamodules.faces.weight_store import FILES, MODELS

    return {name: FILES[name] for name in MODELS[LOCAL_PRETRAINED[backbone]["weights"]]}


def build_embedder(model: Mapping) -> ExternalEmbedder:
    """The outside embedder a `model` config node names (model=dlib, model=onnx model.path=...)."""
    if not issubclass(locate_class(model, "model"), ExternalEmbedder):
        raise ConfigError(
            f"model._target_={model['_target_']!r} is not a pretrained embedder (model=dlib or "
            "model=onnx): a trained net is used through its checkpoint, ckpt=<file>."
        )
    return build_from_config(model)


def embedder_front_end(embedder: ExternalEmbedder, face: Mapping | None) -> FaceFrontEnd:
    """The face front end an outside embedder is fed through: the `face` asked for, with the settings the model
    needs (dlib: face=dlib with its own chip layout, template=dlib and margin 0), said when they change."""
    front_end = build_from_config(face) if face is not None else FaceFrontEnd()
    required = embedder.required_face()
    if required is None:
        return front_end
    if front_end.spec()["name"] != required["name"]:
        raise ConfigError(
            f"model={embedder.kind} embeds the aligned {embedder.input_size[0]}x{embedder.input_size[1]} "
            f"face chip that face={required['name']} cuts, so it cannot read images prepared by "
            f"face={front_end.spec()['name']}: add face={required['name']}."
        )
    spec = front_end.spec()
    changed = {k: v for k, v in required.items() if k != "name" and spec.get(k) != v}
    if changed:
        print(
            f"note: model={embedder.kind} reads its own face chip: face."
            + ", face.".join(f"{k}={v}" for k, v in changed.items())
            + " is used."
        )
        front_end = copy.copy(front_end)  # keeps the run-time settings (on_miss, min_detection_rate)
        for key, value in changed.items():
            setattr(front_end, key, value)
    return front_end


def embedder_checkpoint(embedder: ExternalEmbedder, front_end: FaceFrontEnd) -> dict:
    """An outside embedder as an in-memory checkpoint (no thresholds yet: metric.calibrate writes them)."""
    preprocess = {
        "image_size": list(embedder.input_size),
        "channels": embedder.channels,
        "normalisation": NORMALISATION,
        "face": front_end.spec(),
    }
    return bundle_checkpoint(embedder, preprocess)


def embedder_datamodule(datamodule: Mapping, embedder: ExternalEmbedder, front_end: FaceFrontEnd, **kwargs):
    """The datamodule a config node names, preparing images at the embedder's input size and channels (kwargs:
    other built objects it takes, e.g. augment)."""
    size = {"image_size": list(embedder.input_size), "channels": embedder.channels}
    return sized_datamodule(datamodule, embedder.kind, size, front_end, **kwargs)


def sized_datamodule(datamodule: Mapping, kind: str, size: Mapping, front_end: FaceFrontEnd, **kwargs):
    """The datamodule a config node names, at the fixed input (`size`: image_size, channels) of a model of `kind`."""
    height, width = size["image_size"]
    fixed = {"image_size": [height, width]}
    if "channels" in datamodule:
        fixed["channels"] = size["channels"]
    elif size["channels"] != 3:
        raise ConfigError(
            f"model={kind} reads {size['channels']}-channel images; this datamodule gives colour images only."
        )
    asked = {k: list(datamodule[k]) if k == "image_size" else datamodule[k] for k in fixed}
    if asked != fixed:
        print(
            f"note: model={kind} reads {size['channels']}-channel {height}x{width} images: the datamodule "
            "prepares them at that size."
        )
    return build_from_config(datamodule, face=front_end, **fixed, **kwargs)
