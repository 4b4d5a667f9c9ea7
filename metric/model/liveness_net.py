"""LivenessNet: a timm backbone with a live/spoof logit and, optionally, auxiliary spoof-type and illumination heads."""

from __future__ import annotations

import timm
import torch
from torch import nn

from metric.model.nets import check_model_args, load_backbone_weights

SPOOF_TYPE_CLASSES = 11  # CelebA-Spoof's codes 0 (live) .. 10 (3D mask)
ILLUMINATION_CLASSES = 5  # 0 (live) .. 4 (dark)


class LivenessNet(nn.Module):
    """image (B, C, H, W) -> {"live": (B,) logit of a bona fide face, and with aux_heads "spoof_type" (B, 11) and
    "illumination" (B, 5) logits}: the semantic supervision CelebA-Spoof's paper (AENet) adds."""

    def __init__(self, backbone: str = "resnet18", in_chans: int = 3, pretrained: bool = False,
                 weights: str | None = None, aux_heads: bool = False):
        super().__init__()
        check_model_args(backbone, 1, pretrained, weights)  # no embedding here: any positive size passes
        self.backbone_name = backbone
        self.in_chans = in_chans
        self.aux_heads = bool(aux_heads)
        self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0, in_chans=in_chans)
        if weights:
            load_backbone_weights(self.backbone, weights)
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.live = nn.Linear(features, 1)
        if self.aux_heads:
            self.spoof_type = nn.Linear(features, SPOOF_TYPE_CLASSES)
            self.illumination = nn.Linear(features, ILLUMINATION_CLASSES)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        out = {"live": self.live(features).squeeze(1)}
        if self.aux_heads:
            out.update(spoof_type=self.spoof_type(features), illumination=self.illumination(features))
        return out

    def liveness(self, images: torch.Tensor) -> torch.Tensor:
        """(B,) liveness scores in [0, 1]: the probability of a bona fide face (higher = more live)."""
        return torch.sigmoid(self.forward(images)["live"].float())

    def spec(self) -> dict:
        return {"kind": "liveness", "backbone": self.backbone_name, "in_chans": self.in_chans,
                "aux_heads": self.aux_heads}

    @classmethod
    def from_spec(cls, spec: dict) -> "LivenessNet":
        return cls(backbone=spec["backbone"], in_chans=spec["in_chans"], aux_heads=spec.get("aux_heads", False))
