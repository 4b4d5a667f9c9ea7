"""`python -m metric.export ckpt=<checkpoint> format=onnx|torchscript [quantize=int8] [prune=<share>]`: a phone-ready
model, its sidecar JSON and its size report."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from metric.cli import run_entry, run_task


def export(cfg: DictConfig) -> None:
    from metric.deploy.export import format_report, run_export

    print(format_report(run_export(cfg)))


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run_task(cfg, export)


if __name__ == "__main__":
    run_entry(main)
