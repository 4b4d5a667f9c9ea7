"""`python -m metric.attack ckpt=<checkpoint> attack=fgsm|pgd|patch|uap [purify=jpeg|median]`: attacks on the
verifier at its calibrated threshold (impersonation and dodging), a table, summary.json and plots."""

from __future__ import annotations

from omegaconf import DictConfig

from metric.cli import hydra_entry, run_entry


def attack(cfg: DictConfig) -> None:
    from metric.pipelines.attack import format_rows, run_attack

    print(format_rows(run_attack(cfg)))


main = hydra_entry("attack", attack)


if __name__ == "__main__":
    run_entry(main)
