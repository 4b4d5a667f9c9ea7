"""`python -m metric.evaluate ckpt=... datamodule=... matcher=...`: an auditable verification report for a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from datamodules.base import IdentitySplit
from datamodules.images import read_image
from metric import plots, report
from metric import verification as V
from metric.calibration import calibrate
from metric.checkpoint import build_model, check_same_preprocessing, read_checkpoint, stored_calibration
from metric.config_checks import build_from_config
from metric.embedding_module import CHECKPOINT_KEY
from metric.errors import ConfigError, exit_on_config_error
from metric.matchers import Matcher, make_matcher
from metric.protocols import identification, kfold_accuracy, read_pairs_file
from metric.summary import embed_images
from metric.score_grid import SCORE_RANGES, grid_from_embeddings


class Evaluator:
    """A checkpoint's net and matcher, and the datamodule it is evaluated on."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.checkpoint = read_checkpoint(cfg.ckpt)
        self.meta = self.checkpoint[CHECKPOINT_KEY]
        self.net, head = build_model(self.checkpoint)
        name = cfg.matcher.name or self.meta.get("calibrated_matcher") or self.meta.get("default_matcher")
        self.matcher: Matcher = make_matcher(name, head=head)

    def datamodule(self):
        dm = build_from_config(self.cfg.datamodule)
        dm.setup("test")
        check_same_preprocessing(self.checkpoint, dm.preprocessing)
        return dm

    def embed(self, split: IdentitySplit) -> np.ndarray:
        return embed_images(self.net, split.images, flip=self.cfg.flip_tta)

    def threshold(self, dm) -> tuple[float, str]:
        if self.cfg.threshold_from == "checkpoint":
            calibration = stored_calibration(self.checkpoint, self.matcher.name, self.cfg.ckpt)
            return calibration["threshold"], f"stored in the checkpoint (calibrated at FAR {calibration['calibrated_far']:g})"
        if self.cfg.threshold_from != "val":
            raise ConfigError(f"threshold_from={self.cfg.threshold_from!r} is not one of checkpoint, val.")
        val = dm.splits["val"]
        scores, genuine = V.pair_scores(self.embed(val), val.labels, max_impostor_pairs=dm.max_impostor_pairs,
                                        score_block=self.matcher.numpy_block)
        cal = calibrate(scores, genuine, self.cfg.matcher.target_far, self.matcher.name)
        return cal.threshold, f"recalibrated on the val split at FAR {cal.calibrated_far:g}"


def verification_report(cfg: DictConfig, out: Path) -> dict:
    ev = Evaluator(cfg)
    dm = ev.datamodule()
    split = dm.splits[cfg.split]
    if V.count_pairs(split.labels)[0] == 0:
        raise ConfigError(
            f"the {cfg.split} split has no genuine pairs (no identity has two images): verification needs them. "
            "Use a dataset with several images per identity, or protocol=identification."
        )
    threshold, source = ev.threshold(dm)
    embeddings = ev.embed(split)
    summary = {"protocol": "verification", "checkpoint": str(cfg.ckpt), "matcher": ev.matcher.name, "split": cfg.split,
               "threshold": threshold, "threshold_source": source, "flip_tta": bool(cfg.flip_tta)}
    if cfg.bins:
        low, high = SCORE_RANGES[ev.matcher.name](embeddings.shape[1])
        grid = grid_from_embeddings(embeddings, split.labels, ev.matcher.numpy_block, low, high, cfg.bins)
        curve = grid.roc()
        accepted = grid.bin_of(np.array([threshold]))[0]
        far = float(grid.impostor[accepted:].sum() / curve.n_impostor)
        frr = float(grid.genuine[:accepted].sum() / curve.n_genuine)
        summary.update({"eer": V.eer(curve)[0], "eer_ci95": None, "score_grid_bins": int(cfg.bins),
                        "far_at_threshold": far, "frr_at_threshold": frr})
    else:
        scores, genuine, first, second = V.pair_scores(
            embeddings, split.labels, max_impostor_pairs=dm.max_impostor_pairs, seed=cfg.seed,
            score_block=ev.matcher.numpy_block, return_pairs=True,
        )
        curve = V.roc(scores, genuine)
        far, frr = V.far_frr_at(scores, genuine, threshold)
        summary.update({
            "eer": V.eer(curve)[0],
            "eer_ci95": report.eer_confidence_interval(scores, genuine, split.labels[first], split.labels[second],
                                                       reps=cfg.bootstrap_reps, seed=cfg.seed),
            "far_at_threshold": far, "frr_at_threshold": frr,
        })
        report.write_scores_csv(out / "scores.csv", scores, genuine, first, second, split.sources, split.labels, threshold)
        breakdown = report.condition_breakdown(scores, genuine, first, second, split.factors, threshold)
        report.write_rows_csv(out / "conditions.csv", breakdown)
        summary["conditions"] = breakdown
        plots.plot_histograms(scores, genuine, threshold, out / "score_histograms.png")
        plots.plot_worst_pairs(split.images, scores, genuine, first, second, threshold, out / "worst_pairs.png",
                               cfg.worst_pairs)
    summary.update(report.tar_table(curve))
    summary.update({
        "roc_auc": V.roc_auc(curve), "genuine_pairs": curve.n_genuine, "impostor_pairs": curve.n_impostor,
        "impostor_pairs_sampled": not cfg.bins and V.count_pairs(split.labels)[1] > curve.n_impostor,
        "identities": int(np.unique(split.labels).size), "images": int(split.labels.size),
    })
    plots.plot_roc(curve, out / "roc.png")
    plots.plot_det(curve, out / "det.png")
    return summary


def pairs_report(cfg: DictConfig) -> dict:
    if not cfg.pairs_file or not cfg.root:
        raise ConfigError("protocol=pairs needs pairs_file=<LFW pairs.txt> and root=<image folder>.")
    ev = Evaluator(cfg)
    pairs = read_pairs_file(Path(cfg.pairs_file), Path(cfg.root))
    unique = sorted(set(pairs.first) | set(pairs.second))
    index = {path: i for i, path in enumerate(unique)}
    size, channels = tuple(ev.meta["preprocess"]["image_size"]), ev.meta["preprocess"]["channels"]
    images = np.stack([read_image(p, channels, size) for p in unique])
    emb = torch.from_numpy(embed_images(ev.net, images, flip=cfg.flip_tta))
    a = emb[[index[p] for p in pairs.first]]
    b = emb[[index[p] for p in pairs.second]]
    with torch.no_grad():
        scores = ev.matcher.score(a, b).numpy()
    return {"protocol": "pairs", "checkpoint": str(cfg.ckpt), "matcher": ev.matcher.name,
            "pairs_file": str(cfg.pairs_file), **kfold_accuracy(scores, pairs.genuine, pairs.fold)}


def identification_report(cfg: DictConfig) -> dict:
    ev = Evaluator(cfg)
    split = ev.datamodule().splits[cfg.split]
    result = identification(ev.embed(split), split.labels, ev.matcher, cfg.identification.gallery_images,
                            cfg.identification.unknown_fraction, cfg.seed)
    return {"protocol": "identification", "checkpoint": str(cfg.ckpt), "matcher": ev.matcher.name, **result}


def evaluate(cfg: DictConfig, out: Path) -> dict:
    """Run the protocol, write summary.json (and the verification files) into `out`, return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    protocols = {"verification": lambda: verification_report(cfg, out), "pairs": lambda: pairs_report(cfg),
                 "identification": lambda: identification_report(cfg)}
    if cfg.protocol not in protocols:
        raise ConfigError(f"protocol={cfg.protocol!r} is not one of {', '.join(protocols)}.")
    summary = protocols[cfg.protocol]()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_report(summary: dict) -> str:
    rows = [(k, v) for k, v in summary.items() if k not in ("conditions", "fold_accuracies")]
    width = max(len(k) for k, _ in rows)
    text = lambda v: f"{v:.4g}" if isinstance(v, float) else (
        f"[{v[0]:.4f}, {v[1]:.4f}]" if isinstance(v, list | tuple) and len(v) == 2 else str(v))
    lines = [f"{k.ljust(width)} : {text(v)}" for k, v in rows]
    for row in summary.get("conditions", []):
        lines.append(f"  {row['factor']}={row['value']}: FAR {row['far']} FRR {row['frr']} "
                     f"({row['genuine_pairs']} genuine, {row['impostor_pairs']} impostor pairs)")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    out = Path(cfg.paths.output_dir)
    with exit_on_config_error():
        summary = evaluate(cfg, out)
    print(format_report(summary))
    print(f"report written to {out}")


if __name__ == "__main__":
    main()
