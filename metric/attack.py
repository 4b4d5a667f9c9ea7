"""`python -m metric.attack ckpt=<checkpoint> attack=fgsm|pgd|patch|uap [purify=jpeg|median]`: attacks on the
verifier at its calibrated threshold (impersonation and dodging), a table, summary.json and plots."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from metric.cli import run_entry, run_task


def attack(cfg: DictConfig) -> None:
    from metric.attacks.run import format_rows, run_attack

    print(format_rows(run_attack(cfg)))


@hydra.main(version_base="1.3", config_path="../conf", config_name="attack")
def main(cfg: DictConfig) -> None:
    run_task(cfg, attack)


if __name__ == "__main__":
    run_entry(main)
