"""Pseudo-labelling for self-training: the `self_train` settings, a teacher's embeddings of unlabeled faces clustered
into confident pseudo-identities, and the training split that adds them to the labelled identities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from datamodules.base import IdentityDataModule
from datamodules.images import as_array, resize
from datamodules.sources.unlabeled import UnlabeledData
from datamodules.split import IdentitySplit
from metric.errors import ConfigError
from metric.metrics.calibration import calibrate
from metric.metrics.pseudo_labels import pseudo_label_quality
from metric.model.checkpoint import face_spec
from metric.scoring.clustering import METHODS, PseudoLabels, check_cluster_settings, pseudo_identities
from metric.scoring.feature_cache import pixel_key
from metric.scoring.matchers import make_matcher
from metric.scoring.pairs import pair_scores
from metric.scoring.protocols import embeddings_eer, official_pairs_summary, official_test_pairs
from metric.training.teachers import Teacher


@dataclass
class SelfTraining:
    """The `self_train` config node."""

    rounds: int = 1
    method: str = "agglomerative"  # agglomerative (at the threshold) | kmeans (FAISS, k clusters)
    linkage: str = "average"
    k: int | None = None
    threshold: float | None = None  # cosine similarity; None: the teacher's, calibrated at target_far on validation
    target_far: float = 1e-3
    min_cluster_size: int = 3  # raised to the batches' images per identity (K) when that is larger
    baseline: bool = True  # round 0: the student on the labelled identities alone

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"self_train.rounds={self.rounds!r} must be a whole number >= 1.")
        if self.method not in METHODS:
            raise ConfigError(f"self_train.method={self.method!r} is not one of {', '.join(METHODS)}.")
        if self.method == "agglomerative" and self.k is not None:
            raise ConfigError("self_train.k sets the number of k-means clusters: use it with self_train.method=kmeans.")
        if not 0 < self.target_far < 1:
            raise ConfigError(f"self_train.target_far={self.target_far!r} must lie in (0, 1), e.g. 0.001.")
        check_cluster_settings(self.method, self.min_cluster_size, self.linkage, self.threshold, self.k)


def teacher_size(teacher: Teacher) -> tuple[tuple[int, int], int]:
    """((height, width), channels) of the images the teacher reads."""
    if teacher.loaded is not None:
        size = teacher.loaded.preprocess["image_size"]
        return (int(size[0]), int(size[1])), int(teacher.loaded.preprocess["channels"])
    return tuple(teacher.model.input_size), int(teacher.model.channels)


def check_teacher_front_end(teacher: Teacher, datamodule: IdentityDataModule, name: str) -> None:
    """The teacher must see faces cut as the student's are (same front end and channels): else its clusters would
    describe other crops than those the student learns from. A different size is resized to the teacher's."""
    ours = face_spec(datamodule.preprocessing)
    if teacher.loaded is not None:
        theirs = face_spec(teacher.loaded.preprocess)
        if theirs != ours:
            raise ConfigError(
                f"{name} was trained on faces cut by the front end {theirs}, but this datamodule cuts "
                f"them with {ours}: set `face` as in the teacher's training, so that its pseudo-labels "
                "describe the crops the student learns from."
            )
    else:
        required = teacher.model.required_face() or {}
        wrong = {k: v for k, v in required.items() if ours.get(k) != v}
        if wrong:
            settings = " ".join(f"face={v}" if k == "name" else f"face.{k}={v}" for k, v in required.items())
            raise ConfigError(
                f"teacher={teacher.model.kind} reads faces cut by {settings}, but this datamodule cuts "
                f"them with {ours}: add {settings} so that teacher and student see the same crops."
            )
    channels = teacher_size(teacher)[1]
    if channels != datamodule.channels:
        raise ConfigError(
            f"{name} reads {channels}-channel images, but this datamodule gives {datamodule.channels}: "
            f"set datamodule.channels={channels}."
        )


def teacher_embeddings(teacher: Teacher, images: np.ndarray) -> np.ndarray:
    """The teacher's embeddings of these student-sized uint8 images, resized to its input size when it differs."""
    size, _ = teacher_size(teacher)
    if images.shape[1:3] != size:
        images = np.stack(
            [
                as_array(resize(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image), size))
                for image in images
            ]
        )
    return teacher.cache.embed(images)


def teacher_threshold(
    teacher: Teacher, val: IdentitySplit, settings: SelfTraining, max_pairs: int | None = None
) -> tuple[float, dict]:
    """The cosine threshold to cluster at: self_train.threshold, or the teacher's calibrated at target_far on the
    labelled validation identities (with its calibration record)."""
    if settings.threshold is not None:
        return float(settings.threshold), {"threshold_from": "self_train.threshold"}
    scores, genuine = pair_scores(teacher_embeddings(teacher, val.images), val.labels, max_impostor_pairs=max_pairs)
    calibration = calibrate(scores, genuine, settings.target_far, "cosine")
    note = {
        "threshold_from": f"teacher calibrated at FAR {calibration.calibrated_far:g} on validation",
        "teacher_val_frr": calibration.val_frr,
    }
    if calibration.warning:
        note["calibration_warning"] = calibration.warning
    return calibration.threshold, note


def no_confident_cluster(
    pseudo: PseudoLabels, threshold: float, settings: SelfTraining, pool: int, min_size: int
) -> ConfigError:
    smaller = (
        "lower self_train.min_cluster_size"
        if min_size == settings.min_cluster_size
        else f"lower datamodule.batch_images_per_identity (K={min_size} sets the smallest usable cluster)"
    )
    return ConfigError(
        f"no confident pseudo-identity among {pool} unlabeled images: {pseudo.clusters} clusters at cosine "
        f"threshold {threshold:.3f}, {pseudo.too_small} with fewer than {min_size} images, {pseudo.too_loose} with "
        f"a member below the threshold of its centroid. Relax the filter: {smaller}, or lower the threshold "
        "(self_train.threshold=<cosine below the current one>, or a higher self_train.target_far), or give more "
        "unlabeled images."
    )


def with_pseudo_identities(labelled: np.ndarray, pool: IdentitySplit, pseudo: PseudoLabels, first_label: int):
    """The train_override of a round: the labelled identities of the train split, plus the kept pool images under
    pseudo-identity labels first_label, first_label + 1, ..."""
    extra = IdentitySplit(
        pool.images[pseudo.kept],
        pseudo.labels + first_label,
        [pool.sources[i] for i in pseudo.kept],
        [{"pseudo_label": True} for _ in pseudo.kept],
    )

    def override(train: IdentitySplit) -> IdentitySplit:
        own = train.select(labelled)
        return IdentitySplit(
            np.concatenate([own.images, extra.images]),
            np.concatenate([own.labels, extra.labels]),
            own.sources + extra.sources,
            own.factors + extra.factors,
        )

    return override


def teacher_test_figures(teacher: Teacher, datamodule: IdentityDataModule, max_pairs: int) -> dict:
    """The teacher's own test EER on the student's test identities (and the official pairs' accuracy, on LFW)."""
    splits = datamodule.splits
    test = teacher_embeddings(teacher, splits["test"].images)
    figures = {"teacher_test_eer": embeddings_eer(test, splits["test"].labels, max_pairs)}
    pairs = official_test_pairs(datamodule)
    if pairs is not None:
        val = (teacher_embeddings(teacher, splits["val"].images), splits["val"].labels)
        official = official_pairs_summary(val, test, pairs, make_matcher("cosine"), max_pairs, prefix="teacher_pairs")
        figures["teacher_pairs_accuracy"] = official["teacher_pairs_accuracy"]
    return figures


def pseudo_label_round(
    index: int, teacher: Teacher, datamodule: IdentityDataModule, data: UnlabeledData, settings: SelfTraining, seed: int
) -> tuple[PseudoLabels, dict]:
    """One round's pseudo-identities from this teacher, and the round's figures (before its student trains). The
    filter's K is at least the batches' images per identity: a smaller pseudo-identity would never be drawn."""
    min_size = max(settings.min_cluster_size, datamodule.batch_images_per_identity)
    threshold, note = teacher_threshold(teacher, datamodule.splits["val"], settings, datamodule.max_impostor_pairs)
    pseudo = pseudo_identities(
        teacher_embeddings(teacher, data.pool.images),
        threshold,
        settings.method,
        min_size,
        settings.linkage,
        settings.k,
        seed,
    )
    if pseudo.num_identities == 0:
        raise no_confident_cluster(pseudo, threshold, settings, len(data.pool.labels), min_size)
    figures = {
        "threshold": threshold,
        **note,
        "min_cluster_size_used": min_size,
        "pool_images": int(len(data.pool.labels)),
        "clusters": pseudo.clusters,
        "clusters_too_small": pseudo.too_small,
        "clusters_too_loose": pseudo.too_loose,
        "pseudo_identities": pseudo.num_identities,
        "images_kept": int(pseudo.kept.size),
        "training_identities": int(data.labelled.size) + pseudo.num_identities,
        **teacher_test_figures(teacher, datamodule, datamodule.max_impostor_pairs),
    }
    if data.truth is not None:
        figures.update(pseudo_label_quality(pseudo.labels, data.truth[pseudo.kept], data.truth, min_size))
    print(
        f"round {index}: {pseudo.num_identities} pseudo-identities, {pseudo.kept.size} of {len(data.pool.labels)} "
        f"unlabeled images kept (cosine threshold {threshold:.3f}, at least {min_size} images each)"
        + (f", purity {figures['purity']:.3f}" if figures.get("purity") is not None else "")
    )
    return pseudo, figures


def without_eval_images(data: UnlabeledData, datamodule: IdentityDataModule) -> tuple[UnlabeledData, int]:
    """The pool without any image that is also a validation or test image (e.g. the same 10K US photos given as
    distractors): those must never be trained on. Returns the pool and how many images were dropped."""
    held_out = {pixel_key(image) for name in ("val", "test") for image in datamodule.splits[name].images}
    keep = np.array([pixel_key(image) not in held_out for image in data.pool.images], dtype=bool)
    if keep.all():
        return data, 0
    pool = data.pool
    kept = IdentitySplit(
        pool.images[keep],
        pool.labels[keep],
        [s for s, k in zip(pool.sources, keep) if k],
        [f for f, k in zip(pool.factors, keep) if k],
    )
    truth = data.truth[keep] if data.truth is not None else None
    print(f"note: {int((~keep).sum())} unlabeled images are also validation or test images; they are left out.")
    return UnlabeledData(data.labelled, kept, truth), int((~keep).sum())
