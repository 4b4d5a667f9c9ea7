"""Local weight files (safetensors, or .pth state dicts) read into a timm backbone, whatever prefixes the keys carry."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from metric.errors import ConfigError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors or .pth/.pt/.ckpt file, through timm's loader (weights only, never arbitrary
    pickled objects; 'state_dict' / 'model' containers unwrapped, never the EMA copy, 'module.' prefixes dropped)."""
    from timm.models import load_state_dict

    try:
        state = load_state_dict(str(path), use_ema=False, weights_only=True)
    except Exception as error:  # corrupt file, foreign pickle, wrong format
        raise ConfigError(
            f"model.weights={str(path)!r} could not be read as weights ({type(error).__name__}: {error}). "
            "Give a safetensors file or a .pth state dict saved with torch.save(model.state_dict())."
        ) from None
    if isinstance(state.get("model_state_dict"), dict):  # a container timm's loader does not know
        state = state["model_state_dict"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"model.weights={str(path)!r} holds no state dict of tensors.")
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local state dict into the backbone; prefixes such as 'module.' or 'net.backbone.' are stripped."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    matched: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for prefix in ("", "backbone.", "net.backbone.", "model.", "encoder."):  # timm dropped 'module.' already
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
