"""`python -m metric.export ckpt=<checkpoint> format=onnx|torchscript [quantize=int8] [prune=<share>]`: a phone-ready
model, its sidecar JSON and its size report."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from metric.deploy.export import format_report, run_export
from metric.errors import exit_on_config_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        print(format_report(run_export(cfg)))


if __name__ == "__main__":
    main()
