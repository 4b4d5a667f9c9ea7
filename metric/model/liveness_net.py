"""LivenessNet: a timm backbone with a live/spoof logit and, optionally, spoof-type, illumination and Fourier heads."""

from __future__ import annotations

import timm
import torch
from torch import nn

from metric.errors import ConfigError
from metric.model.nets import check_model_args, load_backbone_weights

SPOOF_TYPE_CLASSES = 11  # CelebA-Spoof's codes 0 (live) .. 10 (3D mask)
ILLUMINATION_CLASSES = 5  # 0 (live) .. 4 (dark)
FOURIER_REDUCTION = 8  # the Fourier head reads the backbone's stride-8 feature map (Silent-Face reads a 10x10 map)


class FourierHead(nn.Module):
    """A feature map (B, C, h, w) -> (B, 1, h, w): the predicted log-amplitude spectrum of the input image at that size
    (the auxiliary target of the Silent-Face anti-spoofing models: print and screen textures live in the spectrum)."""

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def fourier_target(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) images -> (B, 1, *size): log(1 + |FFT|) of the grey image, centred, average-pooled to size and
    scaled to [0, 1] per image; what the Fourier head learns to predict."""
    grey = images.float().mean(dim=1)
    spectrum = torch.fft.fftshift(torch.fft.fft2(grey, norm="ortho"), dim=(-2, -1)).abs().log1p()
    pooled = torch.nn.functional.adaptive_avg_pool2d(spectrum[:, None], size)
    low = pooled.amin(dim=(2, 3), keepdim=True)
    high = pooled.amax(dim=(2, 3), keepdim=True)
    return (pooled - low) / (high - low).clamp_min(1e-6)


def fourier_stage(backbone: nn.Module, name: str) -> tuple[int, int]:
    """(index, channels) of the backbone's deepest feature stage at stride <= 8, for the Fourier head."""
    info = getattr(backbone, "feature_info", None)
    if not info or not hasattr(backbone, "forward_intermediates"):
        raise ConfigError(
            f"model.fourier_head=true needs a timm backbone with feature_info and forward_intermediates; "
            f"{name} has none: choose e.g. resnet10t or resnet18, or set model.fourier_head=false."
        )
    stages = [(i, stage["num_chs"]) for i, stage in enumerate(info) if stage["reduction"] <= FOURIER_REDUCTION]
    if not stages:
        raise ConfigError(f"model.fourier_head=true: {name} has no feature stage at stride <= {FOURIER_REDUCTION}.")
    return stages[-1]


class LivenessNet(nn.Module):
    """image (B, C, H, W) -> {"live": (B,) logit of a bona fide face, and with aux_heads "spoof_type" (B, 11) and
    "illumination" (B, 5) logits (the semantic supervision of CelebA-Spoof's AENet), with fourier_head "spectrum"
    (B, 1, H/8, W/8), the predicted spectrum (Silent-Face's auxiliary target)}. Only "live" scores a face."""

    def __init__(
        self,
        backbone: str = "resnet18",
        in_chans: int = 3,
        pretrained: bool = False,
        weights: str | None = None,
        aux_heads: bool = False,
        fourier_head: bool = False,
    ):
        super().__init__()
        check_model_args(backbone, 1, pretrained, weights)  # no embedding here: any positive size passes
        self.backbone_name = backbone
        self.in_chans = in_chans
        for key, value in (("aux_heads", aux_heads), ("fourier_head", fourier_head)):
            if not isinstance(value, bool):
                raise ConfigError(f"model.{key}={value!r} must be true or false.")
        self.aux_heads, self.fourier_head = aux_heads, fourier_head
        self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0, in_chans=in_chans)
        if weights:
            load_backbone_weights(self.backbone, weights)
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.live = nn.Linear(features, 1)
        if self.aux_heads:
            self.spoof_type = nn.Linear(features, SPOOF_TYPE_CLASSES)
            self.illumination = nn.Linear(features, ILLUMINATION_CLASSES)
        if self.fourier_head:
            self.fourier_index, channels = fourier_stage(self.backbone, backbone)
            self.spectrum = FourierHead(channels)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.fourier_head and self.training:
            final, (stage,) = self.backbone.forward_intermediates(images, indices=[self.fourier_index])
            features = self.backbone.forward_head(final, pre_logits=True)
            out["spectrum"] = self.spectrum(stage)
        else:
            features = self.backbone(images)
        out["live"] = self.live(features).squeeze(1)
        if self.aux_heads:
            out.update(spoof_type=self.spoof_type(features), illumination=self.illumination(features))
        return out

    def liveness(self, images: torch.Tensor) -> torch.Tensor:
        """(B,) liveness scores in [0, 1]: the probability of a bona fide face (higher = more live)."""
        return torch.sigmoid(self.forward(images)["live"].float())

    def spec(self) -> dict:
        spec = {
            "kind": "liveness",
            "backbone": self.backbone_name,
            "in_chans": self.in_chans,
            "aux_heads": self.aux_heads,
        }
        return {**spec, "fourier_head": True} if self.fourier_head else spec

    @classmethod
    def from_spec(cls, spec: dict) -> LivenessNet:
        return cls(
            backbone=spec["backbone"],
            in_chans=spec["in_chans"],
            aux_heads=spec.get("aux_heads", False),
            fourier_head=spec.get("fourier_head", False),
        )
