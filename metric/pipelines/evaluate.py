"""The evaluation report of metric.evaluate: a checkpoint scored by protocol (verification, LFW-style pairs, 1:N
identification) into summary.json, with scores.csv, per-condition rates and plots for verification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from datamodules.faces.loader import FaceLoader
from datamodules.images import BadImage
from datamodules.sources.lfw import read_pairs_file
from metric.config_factory import locate_class
from metric.errors import ConfigError
from metric.metrics import verification as V
from metric.metrics.breakdowns import condition_breakdown, eer_confidence_interval
from metric.metrics.calibration import Calibration, calibrate
from metric.metrics.summary import calibration_fields, split_metrics
from metric.model.checkpoint import face_spec
from metric.model.embedders import ExternalEmbedder
from metric.pipelines.evaluate_liveness import checkpoint_task, liveness_report
from metric.report import plots
from metric.report.files import write_rows_csv, write_scores_csv
from metric.report.summary import write_summary
from metric.scoring.feature_cache import FeatureCache
from metric.scoring.load import LoadedModel, asked_front_end, load_for_eval, model_label, note_face_override
from metric.scoring.pairs import count_pairs, pair_scores
from metric.scoring.protocols import identification, kfold_accuracy
from metric.scoring.score_grid import grid_from_embeddings
from metric.scoring.summary import ScoredPairs

PROTOCOLS = ("verification", "pairs", "identification")
THRESHOLD_SOURCES = ("checkpoint", "val")


def threshold_for(cfg: DictConfig, loaded: LoadedModel) -> tuple[Calibration, str]:
    """The stored calibration of the matcher (threshold_from=checkpoint), or a new one on the validation split at
    the matcher's target FAR (threshold_from=val)."""
    if cfg.threshold_from == "checkpoint":
        stored = Calibration(**loaded.calibration())
        return stored, f"stored in the checkpoint (calibrated at FAR {stored.calibrated_far:g})"
    val = loaded.datamodule.splits["val"]
    scores, genuine = pair_scores(
        loaded.embed(val.images, flip=cfg.flip_tta),
        val.labels,
        max_impostor_pairs=loaded.datamodule.max_impostor_pairs,
        score_block=loaded.matcher.numpy_block,
    )
    fresh = calibrate(scores, genuine, loaded.matcher.target_far, loaded.matcher.name)
    return fresh, f"recalibrated on the val split at FAR {fresh.calibrated_far:g}"


def verification_report(cfg: DictConfig, loaded: LoadedModel, out: Path) -> dict:
    """The split's pairs scored at the threshold (stored or recalibrated): rates, with a score grid (`bins`) or with
    every sampled pair (confidence interval, scores.csv, conditions, histograms, worst pairs), and the ROC and DET."""
    split = loaded.datamodule.splits[cfg.split]
    if count_pairs(split.labels)[0] == 0:
        raise ConfigError(
            f"the {cfg.split} split has no genuine pairs (no identity has two images): verification needs them. "
            "Use a dataset with several images per identity, or protocol=identification."
        )
    calibration, source = threshold_for(cfg, loaded)
    embeddings = loaded.embed(split.images, flip=cfg.flip_tta)
    summary = {
        "protocol": "verification",
        "checkpoint": cfg.get("ckpt"),
        "split": cfg.split,
        "flip_tta": bool(cfg.flip_tta),
        **calibration_fields(calibration, source),
    }
    if cfg.bins:
        curve = grid_figures(cfg, loaded, embeddings, calibration.threshold, summary)
    else:
        curve = pair_figures(cfg, loaded, embeddings, calibration.threshold, summary, out)
    name = cfg.split
    plots.plot_roc(curve, out / "roc.png")
    plots.plot_det(
        curve,
        out / "det.png",
        operating_point=(summary[f"{name}_far_at_threshold"], summary[f"{name}_frr_at_threshold"]),
    )
    return summary


def grid_figures(cfg: DictConfig, loaded: LoadedModel, embeddings: np.ndarray, threshold: float, summary: dict):
    """The split's rates from a score grid of every pair (`bins` bins) into `summary`; returns the ROC curve."""
    split, matcher, name = loaded.datamodule.splits[cfg.split], loaded.matcher, cfg.split
    low, high = matcher.score_range(embeddings.shape[1])
    grid = grid_from_embeddings(embeddings, split.labels, matcher.numpy_block, low, high, cfg.bins)
    curve = grid.roc()
    accepted = grid.bin_of(np.array([threshold]))[0]
    far = float(grid.impostor[accepted:].sum() / curve.n_impostor)
    frr = float(grid.genuine[:accepted].sum() / curve.n_genuine)
    summary.update(split_metrics(name, curve, far, frr, split.labels))
    summary.update({"score_grid_bins": int(cfg.bins), "impostor_pairs_sampled": False})
    return curve


def pair_figures(
    cfg: DictConfig, loaded: LoadedModel, embeddings: np.ndarray, threshold: float, summary: dict, out: Path
):
    """The split's rates from its scored pairs into `summary`, with the EER's confidence interval and the condition
    breakdown, and the files behind them (scores.csv, conditions.csv, histograms, worst pairs); returns the ROC."""
    split, matcher, name = loaded.datamodule.splits[cfg.split], loaded.matcher, cfg.split
    pairs = ScoredPairs(
        *pair_scores(
            embeddings,
            split.labels,
            max_impostor_pairs=loaded.datamodule.max_impostor_pairs,
            seed=cfg.seed,
            score_block=matcher.numpy_block,
            return_pairs=True,
        )
    )
    curve = V.roc(pairs.scores, pairs.genuine)
    summary.update(split_metrics(name, curve, *V.far_frr_at(pairs.scores, pairs.genuine, threshold), split.labels))
    summary[f"{name}_eer_ci95"] = eer_confidence_interval(
        pairs.scores,
        pairs.genuine,
        split.labels[pairs.first],
        split.labels[pairs.second],
        reps=cfg.bootstrap_reps,
        seed=cfg.seed,
    )
    summary["impostor_pairs_sampled"] = count_pairs(split.labels)[1] > curve.n_impostor
    write_scores_csv(
        out / "scores.csv",
        pairs.scores,
        pairs.genuine,
        pairs.first,
        pairs.second,
        split.sources,
        loaded.datamodule.identity_names(split),
        threshold,
    )
    summary["conditions"] = condition_breakdown(
        pairs.scores, pairs.genuine, pairs.first, pairs.second, split.factors, threshold
    )
    write_rows_csv(out / "conditions.csv", summary["conditions"])
    plots.plot_histograms(pairs.scores, pairs.genuine, threshold, out / "score_histograms.png")
    plots.plot_worst_pairs(
        split.images,
        pairs.scores,
        pairs.genuine,
        pairs.first,
        pairs.second,
        threshold,
        out / "worst_pairs.png",
        cfg.worst_pairs,
    )
    return curve


def pairs_report(cfg: DictConfig, loaded: LoadedModel, out: Path) -> dict:
    """Every pair of the file scored: each photo through the checkpoint's face front end (a photo without a face
    is used whole, since the protocol scores every pair), then k-fold accuracy."""
    if not cfg.pairs_file or not cfg.root:
        raise ConfigError("protocol=pairs needs pairs_file=<LFW pairs.txt> and root=<image folder>.")
    pairs = read_pairs_file(Path(cfg.pairs_file), Path(cfg.root))
    unique = sorted(set(pairs.first) | set(pairs.second))
    index = {path: i for i, path in enumerate(unique)}
    # an outside embedder without a bundle was built around cfg.face already (with the settings it needs)
    asked = cfg.get("face") is not None and loaded.path is not None
    front_end = asked_front_end(loaded, cfg.face) if asked else loaded.front_end()
    note_face_override(loaded, front_end)
    front_end.on_miss = "whole"
    loader = FaceLoader(front_end, loaded.preprocess["channels"], loaded.preprocess["image_size"], cfg.cache_dir)
    crops = loader.load_many(unique, desc="pairs")
    unreadable = [str(c) for c in crops if isinstance(c, BadImage)]
    if unreadable:
        raise ConfigError(
            f"protocol=pairs: {len(unreadable)} photo(s) of {cfg.pairs_file} cannot be read, e.g. "
            f"{unreadable[0]}. Every pair is scored, so every photo must be readable."
        )
    images = np.stack([c.image for c in crops])
    if isinstance(loaded.net, ExternalEmbedder) and not cfg.flip_tta:  # a frozen model: each crop embedded once, ever
        emb = torch.from_numpy(FeatureCache(loaded.net, loaded.net.spec(), cfg.cache_dir).embed(images))
    else:
        emb = torch.from_numpy(loaded.embed(images, flip=cfg.flip_tta))
    with torch.no_grad():
        scores = loaded.matcher.score(
            emb[[index[p] for p in pairs.first]], emb[[index[p] for p in pairs.second]]
        ).numpy()
    summary = {
        "protocol": "pairs",
        "checkpoint": cfg.get("ckpt"),
        "matcher": loaded.matcher.name,
        "pairs_file": str(cfg.pairs_file),
        "face": front_end.spec(),
        "face_trained": face_spec(loaded.preprocess),
        **kfold_accuracy(scores, pairs.genuine, pairs.fold),
    }
    if front_end.active:
        summary["face_detection_rate"] = float(np.mean([c.found for c in crops]))
        summary["faces_missed_used_whole"] = int(sum(not c.found for c in crops))
        plots.plot_faces(
            [{"source": str(p), **c.record()} for p, c in zip(unique, crops)],
            {str(p): c.image for p, c in zip(unique, crops)},
            out / "faces.png",
        )
    return summary


def plot_datamodule_faces(loaded: LoadedModel, split: str, out: Path) -> None:
    """faces.png of the split scored, when the datamodule ran a face front end."""
    datamodule = loaded.datamodule
    if not datamodule.face.active:
        return
    images = datamodule.splits[split]
    crops = dict(zip(images.sources, images.images))
    plots.plot_faces([e for e in datamodule.face_log if e.get("split") == split], crops, out / "faces.png")


def identification_report(cfg: DictConfig, loaded: LoadedModel) -> dict:
    split = loaded.datamodule.splits[cfg.split]
    result = identification(
        loaded.embed(split.images, flip=cfg.flip_tta),
        split.labels,
        loaded.matcher,
        cfg.identification.gallery_images,
        cfg.identification.unknown_fraction,
        cfg.seed,
    )
    return {"protocol": "identification", "checkpoint": cfg.get("ckpt"), "matcher": loaded.matcher.name, **result}


def evaluate(cfg: DictConfig, out: Path) -> dict:
    """Run the protocol, write summary.json (and the verification files) into `out`, return the summary."""
    if cfg.protocol not in PROTOCOLS:
        raise ConfigError(f"protocol={cfg.protocol!r} is not one of {', '.join(PROTOCOLS)}.")
    if cfg.threshold_from not in THRESHOLD_SOURCES:
        raise ConfigError(f"threshold_from={cfg.threshold_from!r} is not one of {', '.join(THRESHOLD_SOURCES)}.")
    if cfg.get("ckpt") is not None and (
        str(cfg.ckpt) == "faceantispoofing" or Path(cfg.ckpt).is_file() and checkpoint_task(cfg.ckpt) == "liveness"
    ):
        summary, _ = liveness_report(cfg, out)  # cross-dataset liveness: the checkpoint's own threshold
        write_summary(summary, out / "summary.json")
        return summary
    needs_data = cfg.protocol != "pairs"
    if needs_data and getattr(locate_class(cfg.datamodule, "datamodule"), "task", None) == "liveness":
        raise ConfigError(
            f"datamodule={cfg.datamodule._target_.rsplit('.', 1)[-1]} is a liveness dataset (live or "
            "attack, no identities to match): evaluate a liveness checkpoint on it (ckpt=<metric.train "
            "+experiment=liveness checkpoint> or ckpt=faceantispoofing)."
        )
    if cfg.get("model") is not None:
        if cfg.get("ckpt") is not None:
            raise ConfigError(
                "give either ckpt=<checkpoint or calibrated bundle> or model=<pretrained embedder>, not both."
            )
        if cfg.threshold_from == "checkpoint":
            print(
                f"note: model={model_label(cfg.model)} has no stored threshold: it is "
                "calibrated on the validation split (threshold_from=val)."
            )
            cfg.threshold_from = "val"
    loaded = load_for_eval(
        cfg.get("ckpt"),
        matcher=cfg.get("matcher"),
        datamodule=cfg.datamodule if needs_data else None,
        calibrated=cfg.protocol == "verification" and cfg.threshold_from == "checkpoint",
        model=cfg.get("model"),
        face=cfg.get("face"),
    )
    out.mkdir(parents=True, exist_ok=True)
    if cfg.protocol == "verification":
        summary = verification_report(cfg, loaded, out)
    elif cfg.protocol == "pairs":
        summary = pairs_report(cfg, loaded, out)
    else:
        summary = identification_report(cfg, loaded)
    if needs_data:
        plot_datamodule_faces(loaded, cfg.split, out)
        summary.update(
            {
                "face": loaded.datamodule.face.spec(),
                "face_trained": face_spec(loaded.preprocess),
                **{f"data_{key}": value for key, value in loaded.datamodule.notes.items()},
            }
        )
    if "kind" in loaded.record["net"] or loaded.path is None:  # a pretrained model, or one adapted by adapt
        summary["model"] = loaded.record["net"]
    write_summary(summary, out / "summary.json")
    return summary
