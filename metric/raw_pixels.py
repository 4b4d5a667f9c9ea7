"""`python -m metric.raw_pixels [datamodule=...] [cv.folds=k] [baseline.features=pixels|lbp]
[baseline.projection=none|fisher]`: baselines without a network, scored like a trained model."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from metric.baselines.run import run_baseline
from metric.errors import exit_on_config_error
from metric.report.summary import format_cv_table, format_summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="raw_pixels")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        summary = run_baseline(cfg)
    print(format_cv_table(summary) if "per_fold" in summary else format_summary(summary))


if __name__ == "__main__":
    main()
