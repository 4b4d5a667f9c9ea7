"""`adversarial=fgsm|pgd`: adversarial training settings, and the perturbed share of a batch they make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from datamodules.normalisation import INPUT_RANGE, input_units
from metric.attacks.linf import linf_ascent
from metric.errors import ConfigError

ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class AdversarialTraining:
    """Each training step, a `ratio` share of the batch is perturbed against the current model to raise its loss:
    FGSM (one signed step of eps) or PGD (`steps` steps of `step_size`, null: 2.5 eps / steps), within eps pixel
    values and the pixel range. The objective is (1 - weight) * clean loss + weight * adversarial loss. The values
    live in conf/adversarial/*.yaml."""

    attack: str
    eps: float
    ratio: float
    weight: float
    steps: int = 1
    step_size: float | None = None

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ConfigError(f"adversarial.attack={self.attack!r} is not one of {', '.join(ATTACKS)}.")
        for key in ("ratio", "weight"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                raise ConfigError(f"adversarial.{key}={getattr(self, key)} must be between 0 and 1.")
        if float(self.eps) <= 0:
            raise ConfigError(f"adversarial.eps={self.eps} must be > 0 (pixel values of 255, e.g. 4).")
        if int(self.steps) < 1:
            raise ConfigError(f"adversarial.steps={self.steps} must be at least 1.")

    def perturb(self, net: torch.nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor],
                inputs: torch.Tensor) -> torch.Tensor:
        """The batch of model inputs with a `ratio` share of its images perturbed to raise `loss_of` (computed with
        the net in eval mode, so the attack does not move BatchNorm statistics); inputs stay in range."""
        step_size = input_units(self.step_size) if self.step_size is not None else None  # PGD only
        chosen = torch.rand(len(inputs), device=inputs.device) < self.ratio
        mask = chosen.view(-1, *([1] * (inputs.dim() - 1))).to(inputs.dtype)
        was_training = net.training
        net.eval()
        perturbed = linf_ascent(loss_of, inputs.detach(), input_units(self.eps), *INPUT_RANGE, self.attack,
                                int(self.steps), step_size, mask)
        net.train(was_training)
        return perturbed
