"""Training entry point: `python -m metric.train +experiment=triplet`; returns the best validation EER."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from metric.checkpoint import read_checkpoint, store_calibration
from metric.config_checks import build_from_config, check_config
from metric.errors import ConfigError
from metric.summary import embed_split, format_table, verification_summary, write_summary

# Groups that conf/train.yaml declares as `group: null`. Hydra 1.3 accepts `group=x` for them but rejects
# `+group=x` ("Multiple values"); the README's front door is `+experiment=...`, so both spellings are accepted.
NULL_DEFAULT_GROUPS = ("experiment", "hparams_search", "debug")


def accept_plus_overrides(argv: list[str]) -> list[str]:
    """Rewrite `+experiment=x` (and the other null-default groups) to `experiment=x`."""
    return [a[1:] if a.startswith("+") and a[1:].split("=", 1)[0] in NULL_DEFAULT_GROUPS else a for a in argv]


def build(cfg: DictConfig):
    """Instantiate datamodule, module, callbacks, loggers and trainer; the datamodule is set up (and checked) here."""
    check_config(cfg)
    augment = build_from_config(cfg.augment) if cfg.get("augment") else None
    datamodule = build_from_config(cfg.datamodule, augment=augment)
    datamodule.setup("fit")  # parses data and checks P x K before any training
    net = build_from_config(cfg.model, in_chans=datamodule.channels)
    module = build_from_config(
        cfg.module,
        net=net,
        loss=build_from_config(cfg.loss),
        miner=build_from_config(cfg.miner) if cfg.get("miner") else None,
        optimizer=build_from_config(cfg.optimizer),
        scheduler=build_from_config(cfg.scheduler) if cfg.get("scheduler") else None,
        max_impostor_pairs=datamodule.max_impostor_pairs,
        preprocess=datamodule.preprocessing,
    )
    module.matcher(cfg.matcher.name)  # matcher=logistic on a model without a head stops here, before training
    callbacks = [build_from_config(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    loggers = [build_from_config(c) for c in cfg.get("logger", {}).values() if c is not None]
    trainer = build_from_config(cfg.trainer, callbacks=callbacks, logger=loggers)
    return datamodule, module, trainer


def train(cfg: DictConfig) -> dict:
    """Fit, reload the best checkpoint, calibrate the threshold on validation (stored in that checkpoint), report on test."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)

    checkpoint = trainer.checkpoint_callback
    best_path = getattr(checkpoint, "best_model_path", "") if checkpoint else ""
    if best_path:
        module.load_state_dict(read_checkpoint(best_path)["state_dict"])
    module.eval()
    summary, calibration = verification_summary(
        embed_split(module.net, datamodule.splits["val"]),
        embed_split(module.net, datamodule.splits["test"]),
        module.matcher(cfg.matcher.name),
        cfg.matcher.target_far,
        datamodule.max_impostor_pairs,
    )
    if best_path:
        store_calibration(best_path, calibration.to_dict(), make_default=True)
    summary.update({f"data_{key}": value for key, value in datamodule.notes.items()})
    summary["best_val_eer"] = module.best_val_eer if module.best_val_eer < float("inf") else None
    summary["best_checkpoint"] = best_path or None
    write_summary(summary, output_dir / "summary.json")
    print(format_table(summary))
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return summary["best_val_eer"]


if __name__ == "__main__":
    sys.argv = accept_plus_overrides(sys.argv)
    main()
