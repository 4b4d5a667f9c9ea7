"""`python -m metric.calibrate ckpt=... matcher=...`: add a calibrated threshold for any matcher to a checkpoint."""

from __future__ import annotations


import hydra
from omegaconf import DictConfig

from metric import verification as V
from metric.calibration import Calibration, calibrate
from metric.checkpoint import build_model, check_same_preprocessing, read_checkpoint, store_calibration
from metric.config_checks import build_from_config
from metric.errors import exit_on_config_error
from metric.matchers import make_matcher
from metric.summary import embed_split


def calibrate_checkpoint(cfg: DictConfig) -> Calibration:
    """Embed the validation identities with the checkpoint's net, calibrate the matcher, store it in the checkpoint."""
    checkpoint = read_checkpoint(cfg.ckpt)
    net, head = build_model(checkpoint)
    matcher = make_matcher(cfg.matcher.name, head=head)
    datamodule = build_from_config(cfg.datamodule)
    datamodule.setup("validate")
    check_same_preprocessing(checkpoint, datamodule.preprocessing)
    scores, genuine = V.pair_scores(
        *embed_split(net, datamodule.splits["val"]),
        max_impostor_pairs=datamodule.max_impostor_pairs,
        score_block=matcher.numpy_block,
    )
    calibration = calibrate(scores, genuine, cfg.matcher.target_far, matcher.name)
    store_calibration(cfg.ckpt, calibration.to_dict(), make_default=cfg.make_default)
    return calibration


@hydra.main(version_base="1.3", config_path="../conf", config_name="calibrate")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        calibration = calibrate_checkpoint(cfg)
    for key, value in calibration.to_dict().items():
        if value is not None:
            print(f"{key:18} : {value}")
    print(f"stored in {cfg.ckpt}")
    if calibration.warning:
        print(f"WARNING: {calibration.warning}")


if __name__ == "__main__":
    main()
