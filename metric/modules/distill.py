"""`module=distill`: a small student trained with its own metric loss plus two terms from a frozen teacher checkpoint."""

from __future__ import annotations

import torch

from metric.errors import ConfigError
from metric.model.checkpoint import check_same_preprocessing
from metric.modules.metric_loss import MetricLossModule
from metric.scoring.load import load_for_eval


class DistillModule(MetricLossModule):
    """The student's metric loss, plus `embedding_weight` x (1 - cosine) between each student embedding and the
    teacher's, plus `relation_weight` x the MSE between the batch's student and teacher cosine-similarity
    matrices (relational structure). The teacher's embedding size and preprocessing must match the student's."""

    def __init__(self, net, teacher_ckpt: str, embedding_weight: float, relation_weight: float, **kwargs):
        super().__init__(net, **kwargs)
        teacher = load_for_eval(teacher_ckpt)
        if teacher.net.embedding_dim != net.embedding_dim:
            raise ConfigError(f"teacher.ckpt embeds in {teacher.net.embedding_dim} dimensions but model.embedding_dim="
                              f"{net.embedding_dim}: set model.embedding_dim={teacher.net.embedding_dim}.")
        if self.preprocess:
            try:
                check_same_preprocessing(teacher.checkpoint, self.preprocess)
            except ConfigError as error:
                raise ConfigError(f"teacher.ckpt: {error}") from None
        for p in teacher.net.parameters():
            p.requires_grad_(False)
        self.teacher = [teacher.net.eval()]  # a list: not a submodule, so not trained, saved or moved by Lightning
        self.embedding_weight = float(embedding_weight)
        self.relation_weight = float(relation_weight)

    def extra_loss(self, images: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """The distillation terms, on the student embeddings the metric loss already computed."""
        teacher_net = self.teacher[0].to(images.device)
        with torch.no_grad():
            target = teacher_net(images)
        embedding_term = (1.0 - (student * target).sum(1)).mean()
        relation_term = torch.nn.functional.mse_loss(student @ student.T, target @ target.T)
        self.log("train_distill_embedding", embedding_term, on_step=False, on_epoch=True, batch_size=len(images))
        self.log("train_distill_relation", relation_term, on_step=False, on_epoch=True, batch_size=len(images))
        return self.embedding_weight * embedding_term + self.relation_weight * relation_term
