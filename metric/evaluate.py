"""`python -m metric.evaluate ckpt=<checkpoint> [datamodule=...] [matcher=...] [protocol=...]`: an auditable report."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from metric.cli import run_entry, run_task


def evaluate(cfg: DictConfig) -> None:
    from metric.report.evaluation import evaluate as evaluation_report
    from metric.report.liveness import format_liveness_summary
    from metric.report.summary import format_summary

    out = Path(cfg.paths.output_dir)
    summary = evaluation_report(cfg, out)
    if summary.get("task") == "liveness":
        print(format_liveness_summary(summary, summary["breakdowns"]))
    else:
        print(format_summary(summary, title=f"Evaluation report ({cfg.protocol})"))
    print(f"report written to {out}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_task(cfg, evaluate)


if __name__ == "__main__":
    run_entry(main)
