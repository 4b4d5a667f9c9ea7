"""Fine-tuning a pretrained backbone (`finetune` node, +experiment=finetune): a lower learning rate for the backbone
than
for the new layers, the first blocks frozen, BatchNorm kept in eval mode, warm-up epochs with the backbone frozen,
and the fallback that keeps the pretrained model when validation does not improve.

Blocks are timm's parameter groups of the backbone (`group_matcher`: the stem, then each block, then the head), so
`freeze_blocks` means the same thing on mobilefacenet and on any timm backbone.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from timm.models import group_parameters
from torch import nn

from metric.errors import ConfigError, check_number
from metric.model.checkpoint import CHECKPOINT_KEY, checkpoint_record, read_checkpoint, write_checkpoint
from metric.scoring.embed import embed_images
from metric.scoring.matchers import make_matcher
from metric.scoring.protocols import embeddings_eer, official_pairs_summary, official_test_pairs

BATCHNORM = ("eval", "train")


class FineTuning:
    """The settings of one fine-tuning and what they do to a module's net. backbone_lr_scale: the backbone's learning
    rate as a share of optimizer.lr (new layers, the projection and a classification loss's centres get optimizer.lr);
    freeze_blocks: the first n parameter groups of the backbone never train; batchnorm: eval keeps every BatchNorm
    of the backbone in eval mode (its running statistics), train lets the unfrozen ones use batch statistics (a
    backbone that can measure them, mobilefacenet, first re-expresses them on a training batch); warmup_epochs: epochs
    in which only the new layers train; keep_pretrained: keep the pretrained net when the best validation EER of the
    fine-tuning does not beat it (the checkpoint and the summary say so)."""

    @classmethod
    def check_config(cls, cfg) -> None:
        """Fine-tuning starts from pretrained weights; keep_pretrained compares by cosine; the settings check
        themselves (built here, before any data is read)."""
        from metric.config_factory import build_from_config, locate_class

        model = cfg.model
        if not model.get("pretrained", False) and not model.get("weights"):
            raise ConfigError(
                f"finetune starts from pretrained weights, but model.backbone={model.get('backbone')} has none "
                "(model.pretrained=false, no model.weights): use model=mobilefacenet (python -m metric.weights fetch "
                "mobilefacenet), set model.weights=<file>, or drop finetune (~finetune) to train from scratch."
            )
        settings = build_from_config(cfg.finetune)
        module_cls = locate_class(cfg.module, "module")
        if settings.keep_pretrained and module_cls.default_matcher != "cosine":
            raise ConfigError(
                f"finetune.keep_pretrained=true compares the fine-tuned net with the pretrained one by cosine, but "
                f"module={module_cls.__name__} scores with its {module_cls.default_matcher} head: set "
                "finetune.keep_pretrained=false."
            )

    def __init__(
        self,
        backbone_lr_scale: float = 0.1,
        freeze_blocks: int = 0,
        batchnorm: str = "eval",
        warmup_epochs: int = 0,
        keep_pretrained: bool = True,
    ):
        check_number(backbone_lr_scale, "finetune.backbone_lr_scale", 0)
        check_number(freeze_blocks, "finetune.freeze_blocks", 0, integer=True)
        check_number(warmup_epochs, "finetune.warmup_epochs", 0, integer=True)
        if batchnorm not in BATCHNORM:
            raise ConfigError(
                f"finetune.batchnorm={batchnorm!r} is not one of {', '.join(BATCHNORM)} (eval: running "
                "statistics kept; train: batch statistics)."
            )
        self.backbone_lr_scale, self.freeze_blocks = float(backbone_lr_scale), int(freeze_blocks)
        self.batchnorm, self.warmup_epochs, self.keep_pretrained = batchnorm, int(warmup_epochs), bool(keep_pretrained)
        self.frozen: set[str] = set()  # backbone parameter names that never train

    # what the settings do to the net ------------------------------------------------------------
    def prepare(self, net: nn.Module) -> None:
        """Freeze the first `freeze_blocks` groups of the backbone (one clear error when it has fewer)."""
        backbone = backbone_of(net)
        groups = list(group_parameters(backbone, backbone.group_matcher(coarse=False)).values())
        if self.freeze_blocks >= len(groups):
            raise ConfigError(
                f"finetune.freeze_blocks={self.freeze_blocks}: the backbone has {len(groups)} parameter "
                f"groups (stem, blocks, head), so at most {len(groups) - 1} can be frozen."
            )
        self.frozen = {name for group in groups[: self.freeze_blocks] for name in group}
        for name, parameter in backbone.named_parameters():
            if name in self.frozen:
                parameter.requires_grad_(False)

    def parameter_groups(self, module: nn.Module, lr: float) -> list[dict]:
        """The optimizer's groups: the backbone's unfrozen parameters at lr x backbone_lr_scale (warm-up only pauses
        their gradients), every other trainable parameter (projection, head, loss centres) at lr."""
        backbone = dict(backbone_of(module.net).named_parameters())
        ids = {id(p) for p in backbone.values()}
        return [
            {"params": [p for n, p in backbone.items() if n not in self.frozen], "lr": lr * self.backbone_lr_scale},
            {"params": [p for p in module.parameters() if id(p) not in ids and p.requires_grad], "lr": lr},
        ]

    def start_epoch(self, net: nn.Module, epoch: int) -> None:
        """During warm-up the whole backbone is frozen; afterwards every group but the frozen ones trains."""
        warming = epoch < self.warmup_epochs
        for name, parameter in backbone_of(net).named_parameters():
            parameter.requires_grad_(not warming and name not in self.frozen)

    def apply_batchnorm(self, net: nn.Module) -> None:
        """After net.train(): BatchNorm layers of the backbone that must not update go back to eval mode."""
        for name, module in backbone_of(net).named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                frozen = all(f"{name}.{p}" in self.frozen for p, _ in module.named_parameters())
                if self.batchnorm == "eval" or frozen:
                    module.eval()

    def measure_batchnorm(self, net: nn.Module, images: torch.Tensor) -> None:
        """batchnorm=train on a backbone whose BN holds folded weights: measure its statistics first."""
        backbone = backbone_of(net)
        if self.batchnorm == "train" and hasattr(backbone, "set_batchnorm_statistics"):
            backbone.set_batchnorm_statistics(images)


def backbone_of(net: nn.Module) -> nn.Module:
    backbone = getattr(net, "backbone", None)
    if backbone is None or not hasattr(backbone, "group_matcher"):
        raise ConfigError(
            "finetune fine-tunes a timm backbone (model=mobilefacenet, or model=embedding_net with a "
            "pretrained backbone); this model has none."
        )
    return backbone


class PretrainedFallback:
    """The pretrained net's validation EER (and, on LFW, its official test pairs) before training, and, when the
    fine-tuning's best validation EER does not beat it, the best checkpoint switched back to the pretrained net."""

    def __init__(self, module) -> None:
        self.module = module
        self.state = {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()}
        self.net = copy.deepcopy(module.net).cpu().eval()
        self.val_eer: float | None = None

    def measure(self) -> dict:
        datamodule, module = self.module.trainer.datamodule, self.module
        matcher = make_matcher("cosine")
        val = datamodule.splits["val"]
        embeddings = embed_images(module.net, val.images)
        self.val_eer = embeddings_eer(embeddings, val.labels, module.max_impostor_pairs, matcher.numpy_block)
        notes = {"finetune_val_eer_pretrained": self.val_eer}
        pairs = official_test_pairs(datamodule)
        if pairs is not None:  # the pretrained net on the official pairs (LFW), scored by the same rule
            test = embed_images(module.net, datamodule.splits["test"].images)
            frozen = official_pairs_summary(
                (embeddings, val.labels), test, pairs, matcher, module.max_impostor_pairs, prefix="frozen_test_pairs"
            )
            notes.update({k: v for k, v in frozen.items() if not k.endswith(("_scores", "_genuine"))})
        print(f"finetune: the pretrained net's validation EER is {self.val_eer:.4f}")
        return notes

    def decide(self, best_path: str, best_score: float | None) -> dict:
        """Keep the fine-tuned checkpoint when it beats the pretrained net on validation; else rewrite it as the
        pretrained net (weights, no head, cosine), so fine-tuning never makes a deployment worse."""
        tuned = float(best_score) if best_score is not None else float("inf")
        notes = {"finetune_val_eer_best": tuned if np.isfinite(tuned) else None}  # None: every epoch diverged
        if tuned < self.val_eer:
            print(
                f"finetune: the fine-tuned net beats the pretrained one on validation ({tuned:.4f} < "
                f"{self.val_eer:.4f}): it is kept"
            )
            return {**notes, "finetune_kept": "fine-tuned"}
        print(
            f"finetune: the fine-tuned net does not beat the pretrained one on validation ({tuned:.4f} >= "
            f"{self.val_eer:.4f}): the checkpoint keeps the pretrained net"
        )
        if self.module.trainer.is_global_zero:
            checkpoint = read_checkpoint(best_path)
            state = checkpoint["state_dict"]
            state.update({f"net.{k}": v for k, v in self.state.items()})
            module = self.module
            checkpoint[CHECKPOINT_KEY] = checkpoint_record(self.net, None, module.preprocess, "cosine")
            checkpoint[CHECKPOINT_KEY]["finetune"] = {
                "kept": "pretrained",
                "val_eer_best": notes["finetune_val_eer_best"],
                "val_eer_pretrained": self.val_eer,
            }
            write_checkpoint(best_path, checkpoint)
        return {**notes, "finetune_kept": "pretrained"}


def first_training_images(datamodule, count: int = 64) -> torch.Tensor:
    """Up to `count` training images as model input, for measuring BatchNorm statistics."""
    from datamodules.normalisation import to_model_input

    images = datamodule.splits["train"].images
    rows = np.random.default_rng(0).permutation(len(images))[:count]
    return to_model_input(images[np.sort(rows)])
