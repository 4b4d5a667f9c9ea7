"""`+experiment=adapt`: a small head trained on top of a frozen pretrained embedder, on the user's own identities.

The embedder's outputs for every image are computed once (metric.scoring.feature_cache, kept on disk), so an epoch
is P x K batches of cached vectors through the head: a matrix product, never a forward pass of the embedder.
Validation, the final test and calibration run as in every other training. When the head does not beat the frozen
embedder on the validation identities, the run keeps the frozen embedder (the head's `bypass` flag) and says so.
"""

from __future__ import annotations

import torch

from metric.model.adapted import AdaptedNet, Projection
from metric.model.checkpoint import CHECKPOINT_KEY, checkpoint_record, read_checkpoint, write_checkpoint
from metric.model.embedders import ExternalEmbedder
from metric.modules.metric_loss import MetricLossModule
from metric.scoring.matchers import make_matcher
from metric.scoring.protocols import embeddings_eer, official_pairs_summary, official_test_pairs


class AdaptModule(MetricLossModule):
    """The metric loss (triplet, multi-similarity, ...) on the head's embeddings of cached embedder features.
    `net` is the head (a Projection); the checkpoint records the whole adapted net (embedder spec + head), so every
    entry point rebuilds it as images -> embedder -> head."""

    net_type = ExternalEmbedder
    trains_on_features = True
    self_trainable = False
    refuses = {
        "augment.mix": "augment.mix mixes images, but +experiment=adapt trains a head on cached embedder features: "
        "remove it with ~augment.mix or augment.mix=null.",
        "finetune": "finetune trains the backbone itself; +experiment=adapt trains a head on a frozen outside "
        "embedder: remove finetune (~finetune), or fine-tune a torch backbone (model=mobilefacenet).",
        "identity_loss": "loss.kind={kind} is a classification loss; adapt trains its head with a metric loss: "
        "loss=multi_similarity (the default) or loss=triplet_margin miner=semihard.",
        "augment": "adapt trains on the embedder's outputs, computed once per image, so image augmentation does not "
        "apply: remove augment (~augment on the command line).",
        "adversarial": "adapt trains a head on cached embeddings; adversarial training needs images and gradients "
        "through the embedder: remove adversarial.",
    }
    wrong_net = (
        "+experiment=adapt trains a head on a frozen pretrained embedder: set model=dlib or model=onnx "
        "model.path=<file>."
    )

    def __init__(self, net: Projection, embedder: ExternalEmbedder, **kwargs):
        super().__init__(net, **kwargs)
        self.embedder = [embedder]  # a list: not a submodule (no torch weights; rebuilt from its spec)
        self.frozen_val_eer: float | None = None

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        val = datamodule.splits["val"]
        matcher = make_matcher(self.default_matcher)
        frozen = datamodule.features["val"]  # the embedder's own unit-length embeddings
        self.frozen_val_eer = embeddings_eer(frozen, val.labels, self.max_impostor_pairs, matcher.numpy_block)
        self.run_notes["adapt_val_eer_frozen"] = self.frozen_val_eer
        pairs = official_test_pairs(datamodule)
        if pairs is not None:  # the frozen embedder on the official pairs (LFW)
            frozen_pairs = official_pairs_summary(
                (frozen, val.labels),
                datamodule.features["test"],
                pairs,
                matcher,
                self.max_impostor_pairs,
                prefix="frozen_test_pairs",
            )
            self.run_notes.update({k: v for k, v in frozen_pairs.items() if not k.endswith(("_scores", "_genuine"))})
        print(f"adapt: the frozen embedder's validation EER is {self.frozen_val_eer:.4f}")

    def on_train_end(self) -> None:
        """Keep the head only if its best validation EER beats the frozen embedder's; else switch the best
        checkpoint to the frozen embedder (bypass), so adaptation never makes a deployment worse."""
        best = next((c for c in self.trainer.checkpoint_callbacks if c.monitor == "val_eer"), None)
        if best is None or not best.best_model_path or self.frozen_val_eer is None:
            return
        head_eer = float(best.best_model_score) if best.best_model_score is not None else float("inf")
        self.run_notes["adapt_val_eer_head"] = head_eer
        if head_eer < self.frozen_val_eer:
            self.run_notes["adapt_kept"] = "head"
            print(
                f"adapt: the head beats the frozen embedder on validation ({head_eer:.4f} < "
                f"{self.frozen_val_eer:.4f}): it is kept"
            )
            return
        self.run_notes["adapt_kept"] = "frozen embedder"
        print(
            f"adapt: the head does not beat the frozen embedder on validation ({head_eer:.4f} >= "
            f"{self.frozen_val_eer:.4f}): the run keeps the frozen embedder (the head is bypassed)"
        )
        if self.trainer.is_global_zero:
            checkpoint = read_checkpoint(best.best_model_path)
            checkpoint["state_dict"]["net.bypass"] = torch.tensor(True)
            checkpoint[CHECKPOINT_KEY]["adapt"] = {
                "kept": "frozen embedder",
                "val_eer_head": head_eer,
                "val_eer_frozen": self.frozen_val_eer,
            }
            write_checkpoint(best.best_model_path, checkpoint)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_record(
            AdaptedNet(self.embedder[0], self.net), self.head, self.preprocess, self.default_matcher
        )
