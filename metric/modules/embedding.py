"""The LightningModule base: one shared-weight EmbeddingNet, validation EER over the whole split each epoch, the final
embeddings of the best checkpoint (trainer.test), optimizer wiring, and the checkpoint record."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from datamodules.base import FINAL_SPLITS
from metric.metrics import verification as V
from metric.model.checkpoint import CHECKPOINT_KEY, checkpoint_record
from metric.model.heads import LogisticDistanceHead
from metric.model.nets import EmbeddingNet
from metric.modules.distributed import gather_in_order
from metric.modules.finetune import FineTuning, PretrainedFallback, first_training_images
from metric.modules.trainer_build import optimizer_config
from metric.scoring.embed import embed_batch
from metric.scoring.matchers import make_matcher
from metric.scoring.pairs import count_pairs, pair_scores

# Every logged value is computed from the global batch or the gathered validation set, so it is the same on every
# rank; Lightning's advice to average it across ranks (sync_dist) does not apply.
warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\(")

Embedded = tuple[np.ndarray, np.ndarray]  # (embeddings, identity labels)


class EmbeddingModule(pl.LightningModule):
    """Subclasses define `training_step`; this class embeds validation images and logs val_eer once per epoch, and
    `trainer.test` fills `final_embeddings` with the validation and test splits (FINAL_SPLITS), in order.

    Class attributes: `default_matcher` (how validation scores pairs: cosine here, the trained head for the pair
    module; recorded in the checkpoint) and `has_head` (whether matcher=logistic can be served, which the config
    checks read).
    """

    default_matcher = "cosine"
    has_head = False

    def __init__(
        self,
        net: EmbeddingNet,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        max_impostor_pairs: int = 2_000_000,
        preprocess: dict | None = None,
        finetune: FineTuning | None = None,
    ):
        super().__init__()
        self.net = net
        self.head: LogisticDistanceHead | None = None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.max_impostor_pairs = max_impostor_pairs
        self.preprocess = dict(preprocess or {})
        self._collected: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.final_embeddings: dict[str, Embedded] = {}
        self.run_notes: dict = {}  # what the module reports into the run summary (e.g. which adapt head was kept)
        self.finetune = finetune
        self.fallback: PretrainedFallback | None = None
        if finetune is not None:
            finetune.prepare(net)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    # evaluation ---------------------------------------------------------------------------
    def _collect(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, labels = batch
        embeddings, seen = self._collected.setdefault(split, ([], []))
        embeddings.append(embed_batch(self.net, images))
        seen.append(labels.cpu())

    def _gathered(self, split: str) -> Embedded:
        """This split's embeddings and labels from every rank, in dataset order (under DDP each rank had a shard)."""
        embeddings, labels = self._collected.pop(split)
        return (gather_in_order(self, torch.cat(embeddings)).numpy(), gather_in_order(self, torch.cat(labels)).numpy())

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        # the metric is computed once over the gathered split, never averaged over ranks
        embeddings, labels = self._gathered("val")
        if np.unique(labels).size < 2 or count_pairs(labels)[0] == 0:
            return  # a truncated debug run (fast_dev_run) may see too little to score
        matcher = make_matcher(self.default_matcher, head=self.head)
        scores, genuine = pair_scores(
            embeddings, labels, max_impostor_pairs=self.max_impostor_pairs, score_block=matcher.numpy_block
        )
        if not np.isfinite(scores).all():  # a diverged net: the epoch counts as the worst (checkpoints skip NaN)
            print(
                f"warning: epoch {self.current_epoch} gives non-finite validation scores (the training diverged: "
                "lower optimizer.lr); its val_eer is NaN"
            )
            self.log("val_eer", torch.tensor(float("nan"), dtype=torch.float64, device=self.device), prog_bar=True)
            return
        curve = V.roc(scores, genuine)
        # float64, so ModelCheckpoint.best_model_score (the summary's best_val_eer) is the EER itself, not float32
        self.log("val_eer", torch.tensor(V.eer(curve)[0], dtype=torch.float64, device=self.device), prog_bar=True)
        tar = V.tar_at_far(curve, 1e-2)
        if tar is not None:
            self.log("val_tar_at_far_1e-2", tar)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        # the final embeddings (calibration, the stored threshold, the test EER) are full precision under any
        # trainer precision, as metric.evaluate computes them
        with torch.autocast(device_type=self.device.type, enabled=False):
            self._collect(FINAL_SPLITS[dataloader_idx], (batch[0].float(), batch[1]))

    def on_test_epoch_end(self) -> None:
        self.final_embeddings = {split: self._gathered(split) for split in FINAL_SPLITS}

    # fine-tuning (the `finetune` node) ------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.finetune is None:
            return
        datamodule = self.trainer.datamodule
        self.finetune.measure_batchnorm(self.net, first_training_images(datamodule).to(self.device))
        if self.finetune.keep_pretrained:
            self.fallback = PretrainedFallback(self)
            self.run_notes.update(self.fallback.measure())

    def on_train_epoch_start(self) -> None:
        if self.finetune is not None:
            self.finetune.start_epoch(self.net, self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.finetune is not None:  # whoever set train mode last, frozen BatchNorm stays in eval mode
            self.finetune.apply_batchnorm(self.net)

    def on_train_end(self) -> None:
        if self.fallback is None:
            return
        best = next((c for c in self.trainer.checkpoint_callbacks if c.monitor == "val_eer"), None)
        if best is not None and best.best_model_path:
            self.run_notes.update(self.fallback.decide(best.best_model_path, best.best_model_score))

    # training wiring ----------------------------------------------------------------------
    def configure_optimizers(self):
        parameters = self.parameters()
        if self.finetune is not None:
            lr = self.optimizer_factory(params=[torch.nn.Parameter(torch.zeros(1))]).defaults["lr"]
            parameters = self.finetune.parameter_groups(self, lr)
        return optimizer_config(parameters, self.optimizer_factory, self.scheduler_factory)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_record(self.net, self.head, self.preprocess, self.default_matcher)
