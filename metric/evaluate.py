"""`python -m metric.evaluate ckpt=<checkpoint> [datamodule=...] [matcher=...] [protocol=...]`: an auditable report."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from metric.cli import hydra_entry, run_entry


def evaluate(cfg: DictConfig) -> None:
    from metric.pipelines.evaluate import evaluate as evaluation_report
    from metric.report.liveness import format_liveness_summary
    from metric.report.summary import format_summary

    out = Path(cfg.paths.output_dir)
    summary = evaluation_report(cfg, out)
    if summary.get("task") == "liveness":
        print(format_liveness_summary(summary, summary["breakdowns"]))
    else:
        print(format_summary(summary, title=f"Evaluation report ({cfg.protocol})"))
    print(f"report written to {out}")


main = hydra_entry("evaluate", evaluate)


if __name__ == "__main__":
    run_entry(main)
