"""`python -m metric.calibrate ckpt=<checkpoint> matcher=<name>`: add a calibrated threshold for a matcher to a
checkpoint;
`python -m metric.calibrate model=dlib face=dlib datamodule=...`: write a calibrated bundle of a pretrained embedder."""

from __future__ import annotations

from omegaconf import DictConfig

from metric.cli import hydra_entry, run_entry


def calibrate(cfg: DictConfig) -> None:
    from metric.pipelines.calibrate import calibrate_checkpoint

    calibration, path = calibrate_checkpoint(cfg)
    for key, value in calibration.to_dict().items():
        if value is not None:
            print(f"{key:18} : {value}")
    print(f"stored in {path}")
    if calibration.warning:
        print(f"WARNING: {calibration.warning}")


main = hydra_entry("calibrate", calibrate)


if __name__ == "__main__":
    run_entry(main)
