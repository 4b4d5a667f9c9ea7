"""Base LightningModule: one shared-weight EmbeddingNet, validation EER over the whole split, optimizer wiring."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from metric import verification as V
from metric.distributed import gather_in_order
from metric.heads import LogisticDistanceHead
from metric.matchers import Matcher, make_matcher
from metric.nets import EmbeddingNet

# Every logged value is computed from the global batch or the gathered validation set, so it is the same on every
# rank; Lightning's advice to average it across ranks (sync_dist) does not apply.
warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\(")

CHECKPOINT_KEY = "metric_faces"  # what this project adds to a Lightning checkpoint
CHECKPOINT_FORMAT = 2  # 2: the net spec may hold pool / input_size / dropout (written only when it does)


class EmbeddingModule(pl.LightningModule):
    """Subclasses define `training_step`; this class embeds validation images and logs val_eer once per epoch.

    `default_matcher` is how validation scores pairs: cosine here, the trained head for the siamese module.
    """

    default_matcher = "cosine"

    def __init__(
        self,
        net: EmbeddingNet,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        max_impostor_pairs: int = 2_000_000,
        preprocess: dict | None = None,
    ):
        super().__init__()
        self.net = net
        self.head: LogisticDistanceHead | None = None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.max_impostor_pairs = max_impostor_pairs
        self.preprocess = dict(preprocess or {})
        self._val_embeddings: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self.best_val_eer = float("inf")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def matcher(self, name: str | None = None) -> Matcher:
        return make_matcher(name or self.default_matcher, head=self.head)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self._val_embeddings.append(self.net(images).float().cpu())
        self._val_labels.append(labels.cpu())

    def on_validation_epoch_end(self) -> None:
        # under DDP each rank embedded a shard: the metric is computed once over all of them, never averaged
        embeddings = gather_in_order(self, torch.cat(self._val_embeddings)).numpy()
        labels = gather_in_order(self, torch.cat(self._val_labels)).numpy()
        self._val_embeddings.clear()
        self._val_labels.clear()
        if np.unique(labels).size < 2 or V.count_pairs(labels)[0] == 0:
            return  # a truncated debug run (fast_dev_run) may see too little to score
        scores, genuine = V.pair_scores(
            embeddings, labels, max_impostor_pairs=self.max_impostor_pairs, score_block=self.matcher().numpy_block
        )
        curve = V.roc(scores, genuine)
        val_eer, _ = V.eer(curve)
        if not self.trainer.sanity_checking:
            self.best_val_eer = min(self.best_val_eer, val_eer)
        self.log("val_eer", val_eer, prog_bar=True)
        tar = V.tar_at_far(curve, 1e-2)
        if tar is not None:
            self.log("val_tar_at_far_1e-2", tar)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Everything needed to rebuild the model from the file alone, without Hydra or pickled objects."""
        spec = self.net.spec()
        checkpoint[CHECKPOINT_KEY] = {
            # format 1 readers rebuild any net without the newer spec keys, so those files stay format 1
            "format": CHECKPOINT_FORMAT if set(spec) - {"backbone", "embedding_dim", "in_chans"} else 1,
            "net": spec,
            "head": self.head.spec() if self.head is not None else None,
            "preprocess": self.preprocess,
            "default_matcher": self.default_matcher,
        }
