"""`python -m metric.export ckpt=<checkpoint> format=onnx|torchscript [quantize=int8] [prune=<share>]`: a phone-ready
model, its sidecar JSON and its size report."""

from __future__ import annotations

from omegaconf import DictConfig

from metric.cli import hydra_entry, run_entry


def export(cfg: DictConfig) -> None:
    from metric.pipelines.export import format_report, run_export

    print(format_report(run_export(cfg)))


main = hydra_entry("export", export)


if __name__ == "__main__":
    run_entry(main)
