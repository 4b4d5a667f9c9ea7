"""`module=distill`: a small student trained with its own metric loss plus two terms from a frozen teacher: a
metric.train checkpoint, or any pretrained embedder (`teacher=dlib`, `teacher=onnx`).

The teacher's embeddings of the training images are computed once (metric.scoring.feature_cache, kept on disk)
and looked up by each batch image's pixels; an image the cache has not seen (an augmented one) is embedded by the
teacher on the spot."""

from __future__ import annotations

import numpy as np
import torch

from datamodules.normalisation import to_uint8_images
from metric.errors import ConfigError
from metric.metrics.protocols import embeddings_eer
from metric.model.adapted import outside_embedder
from metric.model.checkpoint import check_same_preprocessing
from metric.model.embedders import ExternalEmbedder, fingerprint_file
from metric.modules.metric_loss import MetricLossModule
from metric.scoring.embed import Model, embed_batch
from metric.scoring.feature_cache import FeatureCache, pixel_key
from metric.scoring.load import LoadedModel, build_embedder, load_for_eval


class Teacher:
    """A frozen model and the cache of its embeddings: `targets(images)` for a batch of model inputs."""

    def __init__(
        self,
        model: Model,
        spec: dict,
        embedding_dim: int,
        cache_dir: str | None = None,
        loaded: LoadedModel | None = None,
    ):
        self.model, self.embedding_dim, self.loaded = model, embedding_dim, loaded
        self.cache = FeatureCache(model, spec, cache_dir)
        self.looked_up = self.computed_online = 0

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's embeddings of these model inputs: from the cache when it has every image, else computed."""
        keys = [pixel_key(image) for image in to_uint8_images(images)]
        if all(key in self.cache.rows for key in keys):
            self.looked_up += len(keys)
            return torch.from_numpy(np.stack([self.cache.rows[k] for k in keys])).to(images.device)
        self.computed_online += len(keys)
        model = self.model.to(images.device) if isinstance(self.model, torch.nn.Module) else self.model
        with torch.no_grad():
            return embed_batch(model, images).to(images.device)


def build_teacher(node) -> Teacher:
    """The `teacher` config node: `ckpt` (a metric.train checkpoint) or `model` (dlib, onnx), with its cache."""
    cache_dir = node.get("cache_dir")
    if node.get("model") is not None:
        embedder = build_embedder(node.model)
        return Teacher(embedder, embedder.spec(), embedder.embedding_dim, cache_dir)
    loaded = load_for_eval(node.ckpt)
    if isinstance(loaded.net, ExternalEmbedder):  # a calibrated bundle: the outside embedder it holds teaches
        return Teacher(loaded.net, loaded.net.spec(), loaded.net.embedding_dim, cache_dir)
    if outside_embedder(loaded.net) is not None:
        raise ConfigError(
            f"teacher.ckpt={node.ckpt}: an adapted embedder cannot teach yet; use its embedder "
            "(teacher=dlib or teacher=onnx), or a metric.train checkpoint."
        )
    for p in loaded.net.parameters():
        p.requires_grad_(False)
    spec = {"ckpt_sha256": fingerprint_file(loaded.path), "net": loaded.record["net"]}
    return Teacher(loaded.net.eval(), spec, loaded.net.embedding_dim, cache_dir, loaded)


class DistillModule(MetricLossModule):
    """The student's metric loss, plus `embedding_weight` x (1 - cosine) between each student embedding and the
    teacher's, plus `relation_weight` x the MSE between the batch's student and teacher cosine-similarity
    matrices (relational structure). The teacher's embedding size and preprocessing must match the student's."""

    def __init__(self, net, teacher: Teacher, embedding_weight: float, relation_weight: float, **kwargs):
        super().__init__(net, **kwargs)
        if teacher.embedding_dim != net.embedding_dim:
            raise ConfigError(
                f"the teacher embeds in {teacher.embedding_dim} dimensions but model.embedding_dim="
                f"{net.embedding_dim}: set model.embedding_dim={teacher.embedding_dim}."
            )
        if teacher.loaded is not None and self.preprocess:
            try:
                check_same_preprocessing(teacher.loaded.checkpoint, self.preprocess)
            except ConfigError as error:
                raise ConfigError(f"teacher.ckpt: {error}") from None
        self.teacher = [teacher]  # a list: not a submodule, so not trained, saved or moved by Lightning
        self.embedding_weight = float(embedding_weight)
        self.relation_weight = float(relation_weight)

    def on_fit_start(self) -> None:
        """Embed every training, validation and test image with the teacher once (cached), and report the
        teacher's own test EER on the same identities as the student's."""
        super().on_fit_start()
        teacher, splits = self.teacher[0], self.trainer.datamodule.splits
        if isinstance(teacher.model, torch.nn.Module):  # a checkpoint teacher embeds on the student's device
            teacher.model.to(self.device)
        before = teacher.cache.computed
        embedded = {name: teacher.cache.embed(split.images) for name, split in splits.items()}
        self.run_notes["teacher_images_embedded"] = teacher.cache.computed - before
        test = splits["test"]
        self.run_notes["teacher_test_eer"] = embeddings_eer(embedded["test"], test.labels, self.max_impostor_pairs)

    def extra_loss(self, images: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """The distillation terms, on the student embeddings the metric loss already computed."""
        target = self.teacher[0].targets(images).to(student.dtype)
        embedding_term = (1.0 - (student * target).sum(1)).mean()
        relation_term = torch.nn.functional.mse_loss(student @ student.T, target @ target.T)
        self.log("train_distill_embedding", embedding_term, on_step=False, on_epoch=True, batch_size=len(images))
        self.log("train_distill_relation", relation_term, on_step=False, on_epoch=True, batch_size=len(images))
        return self.embedding_weight * embedding_term + self.relation_weight * relation_term

    def on_train_end(self) -> None:
        super().on_train_end()
        teacher = self.teacher[0]
        self.run_notes["teacher_targets_from_cache"] = teacher.looked_up
        self.run_notes["teacher_targets_computed_online"] = teacher.computed_online


def teacher_embedder(teacher: Teacher) -> ExternalEmbedder | None:
    """The outside embedder a teacher is, whose input the student's datamodule must prepare (None: a checkpoint)."""
    return teacher.model if isinstance(teacher.model, ExternalEmbedder) else None
