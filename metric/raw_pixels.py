"""`python -m metric.raw_pixels [datamodule=...] [cv.folds=k] [baseline.features=pixels|lbp]
[baseline.projection=none|fisher]`: baselines without a network, scored like a trained model; summary.json in the run
folder."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from metric.cli import run_entry, run_task


def raw_pixels(cfg: DictConfig) -> None:
    from metric.baselines.run import run_baseline
    from metric.report.summary import format_cv_table, format_summary, write_summary

    summary = run_baseline(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_summary(summary, out / "summary.json")
    print(format_cv_table(summary) if "per_fold" in summary else format_summary(summary))
    print(f"summary written to {out / 'summary.json'}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="raw_pixels")
def main(cfg: DictConfig) -> None:
    run_task(cfg, raw_pixels)


if __name__ == "__main__":
    run_entry(main)
