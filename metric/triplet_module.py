"""Embedding-loss objective over P x K batches: a pytorch-metric-learning miner and loss (triplet margin, multi-similarity, ...)."""

from __future__ import annotations

import torch
from torch import nn

from metric.distributed import gather_batch
from metric.embedding_module import EmbeddingModule
from metric.errors import ConfigError
from metric.linf import linf_ascent


class TripletModule(EmbeddingModule):
    """Embeds the whole batch with one shared net, mines triplets, and applies the triplet loss."""

    def __init__(self, net, loss: nn.Module, miner: nn.Module | None = None, adversarial: dict | None = None,
                 **kwargs):
        super().__init__(net, **kwargs)
        self.loss_fn = loss
        self.miner = miner
        self.adversarial = check_adversarial(adversarial) if adversarial else None

    def batch_loss(self, embeddings: torch.Tensor, labels: torch.Tensor):
        triplets = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss_fn(embeddings, labels, triplets), triplets

    def adversarial_images(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A `ratio` share of the batch perturbed by FGSM or PGD to raise the training loss of the current model
        (in eval mode, so BatchNorm statistics are not updated by the attack); inputs stay in [-1, 1]."""
        adv = self.adversarial
        eps = 2.0 * adv["eps"] / 255.0  # the input is pixels / 127.5 - 1: one pixel unit is 2/255
        steps = int(adv["steps"])
        step_size = 2.0 * (adv["step_size"] or 2.5 * adv["eps"] / steps) / 255.0  # PGD only
        chosen = torch.rand(len(images), device=images.device) < adv["ratio"]
        mask = chosen.view(-1, *([1] * (images.dim() - 1))).to(images.dtype)
        was_training = self.net.training
        self.net.eval()
        x = linf_ascent(lambda x: self.batch_loss(self.net(x), labels)[0], images.detach(), eps, -1.0, 1.0,
                        adv["attack"], steps, step_size, mask)
        self.net.train(was_training)
        return x

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        adv_images = self.adversarial_images(images, labels) if self.adversarial else None
        local = self.net(images)
        embeddings, labels_all = gather_batch(self, local, labels)  # the global batch under DDP
        loss, triplets = self.batch_loss(embeddings, labels_all)
        if adv_images is not None:
            adv_loss, _ = self.batch_loss(*gather_batch(self, self.net(adv_images), labels))
            self.log("train_adversarial_loss", adv_loss, on_step=False, on_epoch=True, batch_size=labels.numel())
            weight = self.adversarial["weight"]
            loss = (1.0 - weight) * loss + weight * adv_loss
        labels = labels_all
        batch_size = labels.numel()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        if triplets is not None and len(triplets) == 3:  # (anchor, positive, negative) from a triplet miner
            self.log("train_active_triplet_fraction", active_fraction(triplets, labels), on_step=False,
                     on_epoch=True, batch_size=batch_size)
        elif triplets is not None:  # (anchor, positive, anchor, negative) pairs from a pair miner
            self.log("train_active_pair_fraction", active_pair_fraction(triplets, labels), on_step=False,
                     on_epoch=True, batch_size=batch_size)
        return loss + self.extra_loss(images, local)

    def extra_loss(self, images: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor | float:
        """Terms a subclass adds to the logged objective, from this rank's images and their embeddings."""
        return 0.0


def check_adversarial(settings: dict) -> dict:
    """The adversarial-training settings, with a clear error for values that would train nonsense."""
    settings = {"attack": "fgsm", "eps": 4.0, "ratio": 0.5, "weight": 0.5, "steps": 3, "step_size": None, **settings}
    if settings["attack"] not in ("fgsm", "pgd"):
        raise ConfigError(f"adversarial.attack={settings['attack']!r} is not one of fgsm, pgd.")
    for key in ("ratio", "weight"):
        if not 0.0 <= float(settings[key]) <= 1.0:
            raise ConfigError(f"adversarial.{key}={settings[key]} must be between 0 and 1.")
    if float(settings["eps"]) <= 0:
        raise ConfigError(f"adversarial.eps={settings['eps']} must be > 0 (pixel units /255, e.g. 4).")
    return settings


def active_pair_fraction(pairs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> float:
    """Mined positive and negative pairs as a share of every ordered pair in the batch."""
    n = labels.numel()
    return (len(pairs[0]) + len(pairs[2])) / (n * (n - 1)) if n > 1 else 0.0


def active_fraction(triplets: tuple[torch.Tensor, ...], labels: torch.Tensor) -> float:
    """Mined triplets as a share of every (anchor, positive, negative) triplet in the batch."""
    same = labels[:, None] == labels[None, :]
    positives = same.sum(1) - 1
    negatives = (~same).sum(1)
    possible = int((positives * negatives).sum())
    return len(triplets[0]) / possible if possible else 0.0


class DistillModule(TripletModule):
    """A small student learns from a frozen teacher checkpoint: its own triplet loss, plus a term pulling each
    student embedding towards the teacher's (1 - cosine), plus a term matching the batch's pairwise cosine
    similarities (relational structure). The teacher's embedding size and preprocessing must match."""

    def __init__(self, net, teacher: dict, **kwargs):
        super().__init__(net, **kwargs)
        from metric.checkpoint import build_model, check_same_preprocessing, read_checkpoint

        checkpoint = read_checkpoint(teacher["ckpt"])
        teacher_net, _ = build_model(checkpoint)
        if teacher_net.embedding_dim != net.embedding_dim:
            raise ConfigError(f"teacher.ckpt embeds in {teacher_net.embedding_dim} dimensions but model.embedding_dim="
                              f"{net.embedding_dim}: set model.embedding_dim={teacher_net.embedding_dim}.")
        if self.preprocess:
            try:
                check_same_preprocessing(checkpoint, self.preprocess)
            except ConfigError as error:
                raise ConfigError(f"teacher.ckpt: {error}") from None
        for p in teacher_net.parameters():
            p.requires_grad_(False)
        self.teacher = [teacher_net.eval()]  # a list: not a submodule, so not trained, saved or moved by Lightning
        self.embedding_weight = float(teacher.get("embedding_weight", 1.0))
        self.relation_weight = float(teacher.get("relation_weight", 1.0))

    def extra_loss(self, images: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """The distillation terms, on the student embeddings the triplet loss already computed."""
        teacher_net = self.teacher[0].to(images.device)
        with torch.no_grad():
            target = teacher_net(images)
        embedding_term = (1.0 - (student * target).sum(1)).mean()
        relation_term = torch.nn.functional.mse_loss(student @ student.T, target @ target.T)
        self.log("train_distill_embedding", embedding_term, on_step=False, on_epoch=True, batch_size=len(images))
        self.log("train_distill_relation", relation_term, on_step=False, on_epoch=True, batch_size=len(images))
        return self.embedding_weight * embedding_term + self.relation_weight * relation_term
