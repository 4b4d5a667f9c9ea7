"""`python -m metric.raw_pixels [datamodule=...] [cv.folds=k] [baseline.features=pixels|lbp]
[baseline.projection=none|fisher]`: baselines without a network, scored like a trained model; summary.json in the run
folder."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from metric.cli import hydra_entry, run_entry


def raw_pixels(cfg: DictConfig) -> None:
    from metric.pipelines.baselines import run_baseline
    from metric.report.summary import format_cv_table, format_summary

    summary = run_baseline(cfg)
    print(format_cv_table(summary) if "per_fold" in summary else format_summary(summary))
    print(f"summary written to {Path(cfg.paths.output_dir) / 'summary.json'}")


main = hydra_entry("raw_pixels", raw_pixels)


if __name__ == "__main__":
    run_entry(main)
