"""`+experiment=adapt`: a small head trained on top of a frozen pretrained embedder, on the user's own identities.

The embedder's outputs for every image are computed once (metric.scoring.feature_cache, kept on disk), so an epoch
is P x K batches of cached vectors through the head: a matrix product, never a forward pass of the embedder.
Validation, the final test and calibration run as in every other training. When the head does not beat the frozen
embedder on the validation identities, the run keeps the frozen embedder (the head's `bypass` flag) and says so.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import FINAL_SPLITS, IdentityDataModule
from datamodules.pk_sampler import PKBatchSampler
from metric.errors import ConfigError
from metric.metrics.protocols import embeddings_eer, official_pairs_summary, official_test_pairs
from metric.model.adapted import AdaptedNet, Projection
from metric.model.checkpoint import CHECKPOINT_KEY, checkpoint_record, read_checkpoint, write_checkpoint
from metric.model.embedders import ExternalEmbedder
from metric.modules.metric_loss import MetricLossModule
from metric.scoring.feature_cache import FeatureCache
from metric.scoring.load import build_embedder, embedder_datamodule, embedder_front_end
from metric.scoring.matchers import make_matcher


class FeatureRows(Dataset):
    """(embedder features, identity label) rows of one split; batched fetch for the P x K sampler."""

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        self.features, self.labels = torch.from_numpy(features), torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[index], self.labels[index]

    def __getitems__(self, indices: list[int]):
        return list(zip(self.features[indices], self.labels[indices].tolist()))


class FeatureDataModule(pl.LightningDataModule):
    """An identity datamodule's splits as the frozen embedder's cached features: P x K training batches and ordered
    evaluation batches of vectors. Everything else (splits, notes, preprocessing) is the wrapped datamodule's."""

    def __init__(self, images: IdentityDataModule, features: FeatureCache):
        super().__init__()
        self.images = images
        self.cache = features
        self.features: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str):  # splits, notes, preprocessing, max_impostor_pairs, batch sizes, face, ...
        if name in ("images", "cache", "features") or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.images, name)

    def use_fold(self, fold) -> None:
        self.images.use_fold(fold)
        self.features = {}

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        self.images.setup(stage)
        before = self.cache.computed
        self.features = {name: self.cache.embed(split.images) for name, split in self.images.splits.items()}
        self.images.notes["adapt_images_embedded"] = self.cache.computed - before  # 0: every one came from the cache

    def train_dataloader(self) -> DataLoader:
        split = self.images.splits["train"]
        sampler = PKBatchSampler(
            split.labels, self.images.batch_identities, self.images.batch_images_per_identity, seed=self.images.seed
        )
        return DataLoader(FeatureRows(self.features["train"], split.labels), batch_sampler=sampler)

    def eval_dataloader(self, split: str) -> DataLoader:
        rows = FeatureRows(self.features[split], self.images.splits[split].labels)
        return DataLoader(rows, batch_size=self.images.eval_batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> list[DataLoader]:
        return [self.eval_dataloader(name) for name in FINAL_SPLITS]


class AdaptModule(MetricLossModule):
    """The metric loss (triplet, multi-similarity, ...) on the head's embeddings of cached embedder features.
    `net` is the head (a Projection); the checkpoint records the whole adapted net (embedder spec + head), so every
    entry point rebuilds it as images -> embedder -> head."""

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


def adapt_inputs(cfg, fold=None) -> tuple[FeatureDataModule, Projection, ExternalEmbedder]:
    """The embedder (`model`), the datamodule of its cached features (set up, on cross-validation fold `fold`),
    and the head (`adapt`) to train on them."""
    if cfg.get("augment"):
        raise ConfigError(
            "adapt trains on the embedder's outputs, computed once per image, so image augmentation "
            "does not apply: remove augment (~augment on the command line)."
        )
    if cfg.get("adversarial"):
        raise ConfigError(
            "adapt trains a head on cached embeddings; adversarial training needs images and "
            "gradients through the embedder: remove adversarial."
        )
    embedder = build_embedder(cfg.model)
    images = embedder_datamodule(cfg.datamodule, embedder, embedder_front_end(embedder, cfg.datamodule.get("face")))
    if fold is not None:
        images.use_fold(fold)
    datamodule = FeatureDataModule(images, FeatureCache(embedder, embedder.spec(), cfg.adapt.cache_dir))
    datamodule.setup("fit")
    settings = cfg.adapt
    head = Projection(
        embedder.embedding_dim, settings.get("embedding_dim"), settings.head, settings.hidden, settings.dropout
    )
    return datamodule, head, embedder
