"""`python -m metric.attack ckpt=<checkpoint> attack=fgsm|pgd|patch|uap [purify=jpeg|median]`: attacks on the
verifier at its calibrated threshold (impersonation and dodging), a table, summary.json and plots."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from metric.attacks.run import format_rows, run_attack
from metric.errors import exit_on_config_error


@hydra.main(version_base="1.3", config_path="../conf", config_name="attack")
def main(cfg: DictConfig) -> None:
    with exit_on_config_error():
        print(format_rows(run_attack(cfg)))


if __name__ == "__main__":
    main()
