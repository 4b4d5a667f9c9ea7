"""EmbeddingNet: a timm backbone by name, a linear projection, then L2 normalisation."""

from __future__ import annotations

import difflib
import socket
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from metric.errors import ConfigError

HUB_HOST = "huggingface.co"  # where timm fetches pretrained weights


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


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors or .pth/.pt/.ckpt file; never unpickles arbitrary objects."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, foreign pickle, wrong format
        raise ConfigError(
            f"model.weights={str(path)!r} could not be read as weights ({type(error).__name__}: {error}). "
            "Give a safetensors file or a .pth state dict saved with torch.save(model.state_dict())."
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):  # common containers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"model.weights={str(path)!r} holds a {type(state).__name__}, not a state dict.")
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local state dict into the backbone; prefixes such as 'module.' or 'net.backbone.' are stripped."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    matched: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for prefix in ("", "module.", "backbone.", "net.backbone.", "model.", "encoder."):
            if key.startswith(prefix) and key[len(prefix) :] in own:
                name = key[len(prefix) :]
                if own[name].shape == tensor.shape:
                    matched[name] = tensor
                break
    if not matched:
        raise ConfigError(
            f"model.weights={str(path)!r} has no tensor that fits the backbone "
            f"(its first keys: {list(state)[:3]}; the backbone's: {list(own)[:3]}). "
            "Check that model.backbone names the architecture the file was saved from."
        )
    backbone.load_state_dict(matched, strict=False)
    missing = len(own) - len(matched)
    if missing:
        print(f"model.weights: loaded {len(matched)} tensors; {missing} backbone tensors keep their initial values")


def check_model_args(backbone: str, embedding_dim: int, pretrained: bool, weights: str | None) -> None:
    """Everything about the model config that can be checked before any data is read or weight is built."""
    check_backbone_name(backbone)
    if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim <= 0:
        raise ConfigError(f"model.embedding_dim={embedding_dim!r} must be a positive integer, e.g. 128.")
    if pretrained and weights:
        raise ConfigError("set either model.pretrained=true or model.weights=<file>, not both.")
    if weights and not Path(weights).is_file():
        raise ConfigError(f"model.weights={str(weights)!r}: no such file. Give the path of a .safetensors or .pth file.")
    if pretrained and not hub_reachable():
        raise ConfigError(
            f"model.pretrained=true needs the timm weights hub ({HUB_HOST}), which cannot be reached from this "
            "machine. Download the weights where the hub is reachable and pass model.weights=<file> "
            "(.safetensors or .pth) with model.pretrained=false."
        )


class EmbeddingNet(nn.Module):
    """image (B, C, H, W) -> L2-normalised embedding (B, embedding_dim)."""

    def __init__(
        self,
        backbone: str = "resnet18",
        embedding_dim: int = 128,
        in_chans: int = 3,
        pretrained: bool = False,
        weights: str | None = None,
    ):
        super().__init__()
        check_model_args(backbone, embedding_dim, pretrained, weights)
        self.backbone_name = backbone
        self.embedding_dim = embedding_dim
        self.in_chans = in_chans
        self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0, in_chans=in_chans)
        if weights:
            load_backbone_weights(self.backbone, weights)
        # the pooled output: num_features, or for nets with a head stage (MobileNetV3) the head's width
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.projection = nn.Linear(features, embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(self.backbone(images)), dim=1)

    def spec(self) -> dict:
        """The constructor arguments that rebuild this architecture (weights come from a state dict)."""
        return {"backbone": self.backbone_name, "embedding_dim": self.embedding_dim, "in_chans": self.in_chans}
