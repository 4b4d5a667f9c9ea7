"""The LightningModule base: one shared-weight EmbeddingNet, validation EER over the whole split each epoch, the final
embeddings of the best checkpoint (trainer.test), optimizer wiring, and the checkpoint record."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from metric.config_factory import locate_class
from metric.errors import ConfigError
from metric.losses.class_losses import needs_identity_labels
from metric.metrics import verification as V
from metric.model.checkpoint import checkpoint_record
from metric.model.heads import LogisticDistanceHead
from metric.model.nets import EmbeddingNet
from metric.modules.base import EvaluatedModule
from metric.scoring.embed import embed_batch
from metric.scoring.matchers import make_matcher
from metric.scoring.pairs import count_pairs, pair_scores
from metric.training.finetune import FineTuning, PretrainedFallback, first_training_images

# Every logged value is computed from the global batch or the gathered validation set, so it is the same on every
# rank; Lightning's advice to average it across ranks (sync_dist) does not apply.
warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\(")

Embedded = tuple[np.ndarray, np.ndarray]  # (embeddings, identity labels)


def configured(cfg: DictConfig, part: str) -> bool:
    """Whether the composed config uses `part`: a group (`miner`), a key (`augment.mix`), or `identity_loss`, a loss
    whose class needs the training identities' labels (its `needs_identity_labels`)."""
    if part == "identity_loss":
        return needs_identity_labels(cfg)
    value = OmegaConf.select(cfg, part, default=None)
    return value is not None and value is not False


class EmbeddingModule(EvaluatedModule):
    """Subclasses define `training_step`; this class embeds validation images and logs val_eer once per epoch, and
    `trainer.test` fills `final_embeddings` with the validation and test splits (FINAL_SPLITS), in order.

    Class attributes, which `check_config` and the other components' checks read: `default_matcher` (how validation
    scores pairs: cosine here, the trained head for the pair module; recorded in the checkpoint), `has_head` (whether
    matcher=logistic can be served), `net_type` (the nets it trains), `trains_on_features` (on cached embedder
    outputs rather than images), `self_trainable` (whether self-training may train it as its student) and `refuses`
    (the config parts it cannot train with, each with its one-line fix; `identity_loss` is a loss that needs the
    identity labels, `{kind}` its loss.kind).
    """

    task = "verification"
    default_matcher = "cosine"
    has_head = False
    net_type: type = EmbeddingNet
    trains_on_features = False
    self_trainable = True
    refuses: dict[str, str] = {}
    wrong_net = "model._target_={target!r} is not an EmbeddingNet."

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        """Refuse what this module cannot train with, and a model that is not its kind of net."""
        for part, fix in cls.refuses.items():
            if configured(cfg, part):
                raise ConfigError(fix.format(kind=cfg.loss.get("kind") if cfg.get("loss") is not None else None))
        model_cls = locate_class(cfg.model, "model")
        if not issubclass(model_cls, cls.net_type):
            not_trainable = getattr(model_cls, "not_trainable", None)
            raise ConfigError(not_trainable() if not_trainable else cls.wrong_net.format(target=cfg.model._target_))

    def __init__(
        self, net: EmbeddingNet, max_impostor_pairs: int = 2_000_000, finetune: FineTuning | None = None, **base: Any
    ):
        """`base`: EvaluatedModule's optimizer, scheduler and preprocessing record."""
        super().__init__(net, **base)
        self.head: LogisticDistanceHead | None = None
        self.max_impostor_pairs = max_impostor_pairs
        self.run_notes: dict = {}  # what the module reports into the run summary (e.g. which adapt head was kept)
        self.finetune = finetune
        self.fallback: PretrainedFallback | None = None
        if finetune is not None:
            finetune.prepare(net)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    # evaluation ---------------------------------------------------------------------------
    def outputs(self, images: torch.Tensor) -> torch.Tensor:
        return embed_batch(self.net, images)

    @property
    def final_embeddings(self) -> dict[str, Embedded]:
        """The validation and test embeddings `trainer.test` gathered (calibration and the test figures)."""
        return self.final_outputs

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
    def optimizer_parameters(self):
        if self.finetune is None:
            return self.parameters()
        lr = self.optimizer_factory(params=[torch.nn.Parameter(torch.zeros(1))]).defaults["lr"]
        return self.finetune.parameter_groups(self, lr)

    def checkpoint_record(self) -> dict:
        return checkpoint_record(self.net, self.head, self.preprocess, self.default_matcher)
