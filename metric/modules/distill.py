"""`module=distill`: a small student trained with its own metric loss plus two terms from a frozen teacher: a
metric.train checkpoint, or any pretrained embedder (`teacher=dlib`, `teacher=onnx`).

The teacher's embeddings of the training images are computed once (metric.scoring.feature_cache, kept on disk)
and looked up by each batch image's pixels; an image the cache has not seen (an augmented one) is embedded by the
teacher on the spot."""

from __future__ import annotations

import torch

from metric.errors import ConfigError
from metric.model.checkpoint import check_same_preprocessing
from metric.modules.metric_loss import MetricLossModule
from metric.scoring.protocols import embeddings_eer
from metric.training.teachers import Teacher


class DistillModule(MetricLossModule):
    """The student's metric loss, plus `embedding_weight` x (1 - cosine) between each student embedding and the
    teacher's, plus `relation_weight` x the MSE between the batch's student and teacher cosine-similarity
    matrices (relational structure). The teacher's embedding size and preprocessing must match the student's."""

    self_trainable = False

    @classmethod
    def check_config(cls, cfg) -> None:
        """Distillation needs its teacher: a checkpoint, or an outside model with its file."""
        from omegaconf import OmegaConf

        teacher = cfg.get("teacher")
        if teacher is not None and "ckpt" in teacher.keys() and OmegaConf.is_missing(teacher, "ckpt"):
            raise ConfigError(
                "distillation needs its teacher: add teacher.ckpt=<ckpt>, for example the best checkpoint "
                "of `python -m metric.train +experiment=triplet`, or teacher=dlib."
            )
        model = teacher.get("model") if teacher is not None else None
        if model is not None and "path" in model.keys() and OmegaConf.is_missing(model, "path"):
            raise ConfigError("teacher=onnx needs its model file: add teacher.model.path=<file.onnx>.")
        super().check_config(cfg)

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
