"""`+experiment=self_train`: noisy-student self-training for embeddings. A teacher embeds unlabeled faces, which are
clustered into pseudo-identities; only confident clusters are kept; a noised student (RandAugment, dropout,
stochastic depth) trains on the labelled identities plus the pseudo-identities; the student teaches the next round.

Round 0 (self_train.baseline) is the same student on the labelled identities alone, so every round can be compared
with what the labels alone give. Each round's run lives in <run dir>/round_<r>/; the per-round table is printed
and written to <run dir>/summary.json."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from datamodules.base import IdentityDataModule
from datamodules.folds import CVFold
from datamodules.sources.unlabeled import UnlabeledSource
from metric.config_factory import build_from_config, locate_class
from metric.errors import ConfigError
from metric.pipelines.fit import train_once
from metric.report.self_training import format_rounds
from metric.report.summary import write_summary
from metric.scoring.clustering import PseudoLabels
from metric.training.pseudo_labelling import (
    SelfTraining,
    check_teacher_front_end,
    pseudo_label_round,
    with_pseudo_identities,
    without_eval_images,
)
from metric.training.teachers import build_teacher


def check_self_train_config(cfg: DictConfig) -> None:
    """What self-training cannot run with, before any image is read."""
    if cfg.get("teacher") is None:
        raise ConfigError(
            "self-training needs a teacher to pseudo-label with: teacher=dlib, teacher=onnx "
            "teacher.model.path=<file>, or teacher=ckpt teacher.ckpt=<metric.train checkpoint>."
        )
    teacher = cfg.teacher
    if "ckpt" in teacher.keys() and OmegaConf.is_missing(teacher, "ckpt"):
        raise ConfigError("teacher=ckpt needs its checkpoint: add teacher.ckpt=<file>.")
    trainer = cfg.trainer
    if (
        str(trainer.get("strategy", "auto")) not in ("auto", "single_device")
        or str(trainer.get("devices", 1)) != "1"
        or int(trainer.get("num_nodes", 1)) != 1
    ):
        raise ConfigError(
            "self-training runs its rounds in one process (the pseudo-labelling between rounds is not "
            "sharded): use trainer=cpu or trainer=gpu with trainer.devices=1, not a DDP trainer."
        )
    if not locate_class(cfg.module, "module").self_trainable:
        raise ConfigError(
            f"module={cfg.module._target_.rsplit('.', 1)[-1]}: self-training trains a timm student "
            "with its own loss: use module=metric_loss (the experiment's) or module=pair."
        )


def student_config(cfg: DictConfig, output_dir: Path) -> DictConfig:
    """The config each round's student trains with: no teacher (it learns from labels), its own run folder."""
    out = copy.deepcopy(cfg)
    with open_dict(out):
        for key in ("teacher", "self_train", "unlabeled"):
            out.pop(key, None)
    OmegaConf.update(out, "paths.output_dir", str(output_dir))
    return out


def round_row(index: int, teacher_name: str, student: dict | None, **figures) -> dict:
    row = {"round": index, "teacher": teacher_name, **figures}
    if student is not None:
        row.update(
            {key: student.get(key) for key in ("test_eer", "test_pairs_accuracy", "best_val_eer", "best_checkpoint")}
        )
    return row


def train_self(cfg: DictConfig, fold: CVFold | None = None) -> dict:
    """Every round (and the labelled-only baseline); returns the last round's student summary with the per-round
    table under `self_training_rounds`. Each student is one run of metric.pipelines.fit (`train_once` with
    the round's training split); `fold`: the
    cross-validation fold whose splits every round uses. Round 1's pseudo-labels are made before any student
    trains, so a clustering that keeps nothing stops the run before any training."""

    def train_student(folder: str, override) -> dict:
        return train_once(student_config(cfg, output_dir / folder), fold, train_override=override)

    check_self_train_config(cfg)
    settings: SelfTraining = build_from_config(cfg.self_train)
    source: UnlabeledSource = build_from_config(cfg.unlabeled)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed") or 0)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    datamodule: IdentityDataModule = build_from_config(student_config(cfg, output_dir).datamodule)
    if fold is not None:
        datamodule.use_fold(fold)
    datamodule.setup("fit")
    teacher, teacher_name = build_teacher(cfg.teacher), "teacher"
    check_teacher_front_end(teacher, datamodule, "the teacher")
    data, overlap = without_eval_images(source.load(datamodule, output_dir / "unlabeled_bad_files.txt"), datamodule)
    first_label = 1 + max(int(split.labels.max()) for split in datamodule.splits.values())
    pseudo, figures = pseudo_label_round(1, teacher, datamodule, data, settings, seed)
    figures["pool_images_in_eval_splits"] = overlap
    rows: list[dict] = []
    if settings.baseline:
        labelled_only = with_pseudo_identities(
            data.labelled, data.pool, PseudoLabels(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0, 0), first_label
        )
        student = train_student("round_0", labelled_only)
        rows.append(round_row(0, "-", student, training_identities=int(data.labelled.size), pool_images=0))
    for index in range(1, settings.rounds + 1):
        if index > 1:
            pseudo, figures = pseudo_label_round(index, teacher, datamodule, data, settings, seed)
        student = train_student(f"round_{index}", with_pseudo_identities(data.labelled, data.pool, pseudo, first_label))
        rows.append(round_row(index, teacher_name, student, **figures))
        write_summary({"self_training_rounds": rows, "settings": asdict(settings)}, output_dir / "summary.json")
        if index < settings.rounds:
            if not student.get("best_checkpoint"):
                raise ConfigError(
                    "the round's student saved no checkpoint, so it cannot teach the next round: keep "
                    "the checkpoint callback (callbacks=default)."
                )
            node = OmegaConf.create({"ckpt": student["best_checkpoint"], "cache_dir": cfg.teacher.get("cache_dir")})
            teacher, teacher_name = build_teacher(node), f"round {index} student"
    summary = {**student, "self_training_rounds": rows, "settings": asdict(settings)}
    write_summary(summary, output_dir / "summary.json")
    print(format_rounds(rows))
    return summary
