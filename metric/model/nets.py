"""EmbeddingNet: a timm backbone by name (timm's own, or mobilefacenet), a linear projection (or none, when the backbone
already gives a face embedding), then L2 normalisation; local weight files and the weight store's pretrained faces."""

from __future__ import annotations

import difflib
import socket
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from metric.errors import ConfigError
from metric.model.mobilefacenet import PRETRAINED_INPUT
from metric.model.weight_files import load_backbone_weights

HUB_HOST = "huggingface.co"  # where timm fetches pretrained weights
# backbones pretrained on faces whose weights come from the weight store (never a hub), and the input they read
LOCAL_PRETRAINED = {"mobilefacenet": PRETRAINED_INPUT}
PROJECTIONS = ("linear", "none")


def check_backbone_name(name: str) -> None:
    """Fail with close matches when `name` is not a timm model."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ConfigError(
        f"model.backbone={name!r} is not a timm model. Use a name from timm.list_models(), "
        f"for example resnet18, mobilenetv2_100 or efficientnet_b0.{hint}"
    )


def hub_reachable(host: str = HUB_HOST, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the weights hub opens within timeout_s."""
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def configured_weights(model) -> str | None:
    """model.weights; when it is read from another key that is still required (`${pretrained_checkpoint}` in
    +experiment=transfer), one line naming that key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationToMissingValueError

    try:
        return model.get("weights")
    except InterpolationToMissingValueError:
        source = str(OmegaConf.to_container(model, resolve=False)["weights"]).strip("${}")
        raise ConfigError(
            f"this experiment fine-tunes a pretrained net (model.weights is read from {source}): add "
            f"{source}=<ckpt>, for example the best checkpoint of `python -m metric.train +experiment=triplet` "
            "(trained on the synthetic faces)."
        ) from None


def face_settings(face) -> dict | None:
    """The front end a `face` node names, as the name, template and margin its crops are cut with (nothing built)."""
    if face is None:
        return None
    from metric.config_factory import locate_class

    return {
        "name": locate_class(face, "face").name,
        "template": face.get("template", "arcface"),
        "margin": face.get("margin", 0.0),
    }


def check_model_args(backbone: str, embedding_dim: int, pretrained: bool, weights: str | None) -> None:
    """Everything about the model config that can be checked before any data is read or weight is built."""
    check_backbone_name(backbone)
    if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim <= 0:
        raise ConfigError(f"model.embedding_dim={embedding_dim!r} must be a positive integer, e.g. 128.")
    if pretrained and weights:
        raise ConfigError("set either model.pretrained=true or model.weights=<file>, not both.")
    if weights and not Path(weights).is_file():
        raise ConfigError(
            f"model.weights={str(weights)!r}: no such file. Give the path of a .safetensors or .pth file."
        )
    if pretrained and backbone in LOCAL_PRETRAINED:  # the weight store: present and verified, or the fetch command
        from datamodules.faces.weight_store import model_files

        model_files(LOCAL_PRETRAINED[backbone]["weights"])
        return
    if pretrained and not hub_reachable():
        raise ConfigError(
            f"model.pretrained=true needs the timm weights hub ({HUB_HOST}), which cannot be reached from this "
            "machine. Download the weights where the hub is reachable and pass model.weights=<file> "
            "(.safetensors or .pth) with model.pretrained=false."
        )


def check_face_input(backbone: str, pretrained: bool, image_size, channels: int, face: dict | None) -> None:
    """A backbone pretrained on aligned faces reads them at its own size, on its own template; anything else stops
    here with the settings to use. `face` holds the front end's name, template and margin (None: no front end)."""
    need = LOCAL_PRETRAINED.get(backbone)
    if need is None:
        return
    height, width = need["image_size"]
    if [int(v) for v in image_size] != [height, width] or (pretrained and channels != need["channels"]):
        raise ConfigError(
            f"model.backbone={backbone} reads {need['channels']}-channel {height}x{width} faces (got "
            f"{channels}-channel {list(image_size)}): set datamodule.image_size=[{height},{width}] "
            f"datamodule.channels={need['channels']}."
        )
    if not pretrained:
        return
    crop = need["face"]
    if face is None or face.get("name", "none") == "none":
        raise ConfigError(
            f"model.backbone={backbone} was pretrained on faces aligned on the {crop['template']} "
            f"5-point template, tight, at {height}x{width}, but face=none passes whole images: add "
            f"face=mtcnn (the alignment it was trained with), or face=dlib face.template={crop['template']} "
            f"face.margin={crop['margin']:g}."
        )
    wrong = {k: face.get(k) for k, v in crop.items() if face.get(k, v) != v}
    if wrong:
        asked = ", ".join(f"face.{k}={v}" for k, v in wrong.items())
        needed = " ".join(f"face.{k}={v}" for k, v in crop.items())
        raise ConfigError(
            f"model.backbone={backbone} was pretrained on faces aligned on the {crop['template']} "
            f"template with no margin, but {asked} cuts another crop: set {needed}."
        )
    if face.get("name") == "dlib":
        print(
            f"note: face=dlib puts dlib's nose base where the {crop['template']} template has the nose tip; "
            f"face=mtcnn gives {backbone} the five points it was trained with (docs/pretrained.md measures both)."
        )


def check_head_args(pool: str, input_size, dropout: float) -> None:
    if pool not in EmbeddingNet.POOLS:
        raise ConfigError(f"model.pool={pool!r} is not one of {', '.join(EmbeddingNet.POOLS)}.")
    if pool == "flatten" and (input_size is None or len(input_size) != 2):
        raise ConfigError(
            f"model.pool=flatten needs the input size as [height, width] (got {input_size!r}); "
            "metric.train passes the datamodule's image_size."
        )
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"model.dropout={dropout!r} must be a probability in [0, 1), e.g. 0.2.")


def create_backbone(backbone: str, pretrained: bool, in_chans: int, drop_path_rate: float) -> nn.Module:
    """timm's `backbone` without its classifier, with stochastic depth when drop_path_rate is not 0."""
    depth = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}  # stochastic depth
    try:
        return timm.create_model(backbone, pretrained=pretrained, num_classes=0, in_chans=in_chans, **depth)
    except TypeError as error:
        if not depth:
            raise
        raise ConfigError(
            f"model.backbone={backbone} has no stochastic depth ({error}): set model.drop_path_rate=0, or pick a "
            "backbone that has it (resnet*, efficientnet_*, convnext_*, vit_*)."
        ) from None


class EmbeddingNet(nn.Module):
    """image (B, C, H, W) -> L2-normalised embedding (B, embedding_dim).

    pool="avg": the backbone's globally pooled features -> linear. pool="flatten": the backbone's last feature
    map, flattened, -> linear, which keeps where on the face each feature was (the face-recognition "E" output
    layer); it needs the input size to size the projection."""

    POOLS = ("avg", "flatten")

    @classmethod
    def check_config(cls, cfg) -> None:
        """The model node, checked before any data is read or weight is built (the input size comes from the data)."""
        model = cfg.model
        weights = configured_weights(model)
        check_model_args(model.backbone, model.embedding_dim, model.get("pretrained", False), weights)
        check_head_args(model.get("pool", "avg"), [1, 1], model.get("dropout", 0.0))
        check_face_input(
            model.backbone,
            model.get("pretrained", False),
            cfg.datamodule.get("image_size", [0, 0]),
            cfg.datamodule.get("channels", 3),
            face_settings(cfg.get("face")),
        )

    def __init__(
        self,
        backbone: str = "resnet18",
        embedding_dim: int = 128,
        in_chans: int = 3,
        pretrained: bool = False,
        weights: str | None = None,
        pool: str = "avg",
        input_size: tuple[int, int] | list[int] | None = None,
        dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        projection: str = "linear",
    ):
        super().__init__()
        check_model_args(backbone, embedding_dim, pretrained, weights)
        if projection not in PROJECTIONS:
            raise ConfigError(
                f"model.projection={projection!r} is not one of {', '.join(PROJECTIONS)} (none: the "
                "backbone's output is the embedding)."
            )
        check_head_args(pool, input_size, dropout)
        if (
            isinstance(drop_path_rate, bool)
            or not isinstance(drop_path_rate, (int, float))
            or not 0 <= drop_path_rate < 1
        ):
            raise ConfigError(f"model.drop_path_rate={drop_path_rate!r} must be a probability in [0, 1), e.g. 0.1.")
        self.backbone_name = backbone
        self.embedding_dim = embedding_dim
        self.in_chans = in_chans
        self.pool = pool
        self.input_size = [int(v) for v in input_size] if input_size is not None else None
        self.drop_path_rate = float(drop_path_rate)
        self.backbone = create_backbone(backbone, pretrained, in_chans, self.drop_path_rate)
        if weights:
            load_backbone_weights(self.backbone, weights)
        if pool == "flatten":
            with torch.no_grad():
                was_training = self.backbone.training
                features = self.backbone.eval().forward_features(torch.zeros(1, in_chans, *self.input_size)).numel()
                self.backbone.train(was_training)
        else:  # the pooled output: num_features, or for nets with a head stage (MobileNetV3) the head's width
            features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.projection_kind = projection
        if projection == "none":  # a backbone pretrained to give face embeddings: its output is the embedding
            if pool != "avg" or features != embedding_dim:
                raise ConfigError(
                    f"model.projection=none uses the backbone's own output ({features}-d with pool=avg) "
                    f"as the embedding: set model.embedding_dim={features} model.pool=avg, or "
                    "model.projection=linear."
                )
            self.projection = nn.Identity()
        else:
            self.projection = nn.Linear(features, embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool == "flatten":
            features = self.backbone.forward_features(images).flatten(1)
        else:
            features = self.backbone(images)
        return F.normalize(self.projection(self.dropout(features)), dim=1)

    def spec(self) -> dict:
        """The constructor arguments that rebuild this architecture (weights come from a state dict)."""
        spec = {"backbone": self.backbone_name, "embedding_dim": self.embedding_dim, "in_chans": self.in_chans}
        if self.pool != "avg":
            spec.update(pool=self.pool, input_size=self.input_size)
        if self.dropout.p:
            spec["dropout"] = float(self.dropout.p)
        if self.projection_kind != "linear":
            spec["projection"] = self.projection_kind
        return spec  # drop_path_rate is left out: it changes training only, and older readers would refuse the key
