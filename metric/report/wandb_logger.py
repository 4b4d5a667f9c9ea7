"""W&B logger: the composed config, per-epoch metrics, and an end-of-training verification report with images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pytorch_lightning.loggers import WandbLogger

from metric.metrics import verification as V
from metric.report.plots import worst_pairs
from metric.scoring.summary import ScoredPairs


def sweep_group() -> str | None:
    """The multirun's directory name (one per sweep) when this job belongs to a Hydra sweep, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return None
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return "sweep-" + Path(HydraConfig.get().sweep.dir).name


class MetricWandbLogger(WandbLogger):
    """Lightning's WandbLogger, offline unless mode=online, with this project's end-of-training report.

    group: null becomes the sweep's name inside a Hydra multirun. checkpoint_artifact: null logs the best
    checkpoint (after its threshold is calibrated) as a model artifact when online, and not when offline.
    report_pairs worst false accepts and false rejects, and up to embedding_rows test embeddings, go into
    tables with thumbnails.
    """

    def __init__(
        self,
        mode: str = "offline",
        group: str | None = None,
        checkpoint_artifact: bool | None = None,
        report_pairs: int = 16,
        embedding_rows: int = 1000,
        **kwargs,
    ):
        super().__init__(mode=mode, group=group or sweep_group(), log_model=False, **kwargs)
        self.checkpoint_artifact = mode == "online" if checkpoint_artifact is None else checkpoint_artifact
        self.report_pairs = report_pairs
        self.embedding_rows = embedding_rows

    def log_verification_report(
        self,
        images: np.ndarray,
        embeddings: np.ndarray,
        labels: np.ndarray,
        pairs: ScoredPairs,
        threshold: float,
        summary: dict,
        best_checkpoint: str | None,
    ) -> None:
        """ROC and DET curves, score histograms, worst-pair and embedding tables, summary, best checkpoint; from
        the test pairs the summary scored (the same pairs, the same impostor sample)."""
        import wandb

        scores, genuine, first, second = pairs.scores, pairs.genuine, pairs.first, pairs.second
        curve = V.roc(scores, genuine)
        far, frr = V.det_points(curve)
        roc = wandb.Table(columns=["far", "tar"], data=[[float(a), float(1 - b)] for a, b in zip(far, frr)])
        floor = 1.0 / max(curve.n_impostor, curve.n_genuine, 1)  # log axes: zero rates drawn at one pair's share
        det = wandb.Table(
            columns=["log10_far", "log10_frr"],
            data=[[float(np.log10(max(a, floor))), float(np.log10(max(b, floor)))] for a, b in zip(far, frr)],
        )
        log = {
            "test/roc": wandb.plot.line(roc, "far", "tar", title="ROC (test identities)"),
            "test/det": wandb.plot.line(det, "log10_far", "log10_frr", title="DET, log10 axes (test identities)"),
            "test/genuine_scores": wandb.Histogram(scores[genuine]),
            "test/impostor_scores": wandb.Histogram(scores[~genuine]),
            "test/worst_pairs": self._worst_pairs_table(images, labels, scores, genuine, first, second, threshold),
            "test/embeddings": self._embedding_table(images, embeddings, labels),
        }
        self.experiment.log(log)
        self.experiment.summary.update(
            {f"summary/{key}": value for key, value in summary.items() if isinstance(value, (int, float, str))}
        )
        if self.checkpoint_artifact and best_checkpoint:
            artifact = wandb.Artifact(
                f"model-{self.experiment.id}",
                type="model",
                metadata={k: v for k, v in summary.items() if isinstance(v, (int, float, str))},
            )
            artifact.add_file(best_checkpoint, name="best.ckpt")
            self.experiment.log_artifact(artifact, aliases=["best"])

    def _worst_pairs_table(self, images, labels, scores, genuine, first, second, threshold: float):
        import wandb

        table = wandb.Table(
            columns=["kind", "error", "score", "threshold", "identity_a", "image_a", "identity_b", "image_b"]
        )
        for kind, picks in zip(("false accept", "false reject"), worst_pairs(scores, genuine, self.report_pairs)):
            for k in picks:
                wrong = bool((scores[k] >= threshold) != genuine[k])
                a, b = int(first[k]), int(second[k])
                table.add_data(
                    kind,
                    wrong,
                    float(scores[k]),
                    float(threshold),
                    int(labels[a]),
                    thumbnail(images[a]),
                    int(labels[b]),
                    thumbnail(images[b]),
                )
        return table

    def _embedding_table(self, images, embeddings, labels):
        import wandb

        rows = np.random.default_rng(0).permutation(len(labels))[: self.embedding_rows]
        dims = [f"e{i}" for i in range(embeddings.shape[1])]
        table = wandb.Table(columns=["identity", "thumbnail", *dims])
        for r in np.sort(rows):
            table.add_data(str(labels[r]), thumbnail(images[r]), *map(float, embeddings[r]))
        return table


def thumbnail(image: np.ndarray):
    import wandb

    return wandb.Image(image.squeeze(-1) if image.shape[-1] == 1 else image)


def find_wandb_logger(trainer) -> MetricWandbLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, MetricWandbLogger)), None)
