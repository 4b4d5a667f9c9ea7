"""`python -m metric.train +experiment=triplet`: train, calibrate and report; returns the best validation EER (what a
Hydra sweeper minimises)."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from metric.cli import hydra_entry, run_entry

# Groups that conf/train.yaml declares as `group: null`. Hydra 1.3 accepts `group=x` for them but rejects
# `+group=x` ("Multiple values"); the README's main command is `+experiment=...`, so both spellings are accepted.
NULL_DEFAULT_GROUPS = ("experiment", "hparams_search", "debug")

# `adversarial=true|false` reads naturally, but Hydra parses the value as a bool, which it refuses as a group
# option (a ValueError deep in its defaults list): the spellings are mapped to the group's options instead.
BOOLEAN_GROUP_OPTIONS = {"adversarial=true": "adversarial=fgsm", "adversarial=false": "~adversarial"}


def make_dirs(path: str) -> str:
    """`${metric.make_dirs:<dir>}` in a config: the directory, created if missing (e.g. for a SQLite file)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(Path(path).resolve())


OmegaConf.register_new_resolver("metric.make_dirs", make_dirs, replace=True)


def accept_plus_overrides(argv: list[str]) -> list[str]:
    """Rewrite `+experiment=x` (and the other null-default groups) to `experiment=x`, and `adversarial=true|false`
    to `adversarial=fgsm` and `~adversarial` (no adversarial training)."""
    argv = [BOOLEAN_GROUP_OPTIONS.get(a.lower(), a) for a in argv]
    return [a[1:] if a.startswith("+") and a[1:].split("=", 1)[0] in NULL_DEFAULT_GROUPS else a for a in argv]


def train(cfg: DictConfig) -> float | None:
    from metric.pipelines.train import train as train_and_report
    from metric.training.distributed import run_ddp_children_as_this_job

    run_ddp_children_as_this_job()  # before any Trainer launches ranks: they re-run this job, not the sweep
    summary = train_and_report(cfg)
    return summary["best_val_eer"] if summary else None


main = hydra_entry("train", train)


if __name__ == "__main__":
    sys.argv = accept_plus_overrides(sys.argv)
    run_entry(main)
