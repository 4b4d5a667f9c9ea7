"""`adversarial=fgsm|pgd|patch`: adversarial training settings, and the perturbed share of a batch they make."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from datamodules.normalisation import INPUT_RANGE, input_units
from metric.attacks.linf import linf_ascent
from metric.attacks.masks import build_masks, check_mask
from metric.errors import ConfigError

ATTACKS = ("fgsm", "pgd", "patch")
LINF_ATTACKS = ("fgsm", "pgd")  # an eps budget around each pixel
# What a setting left at null means, per attack (the yaml files spell the values out): pgd's step_size stays null,
# which linf_ascent reads as 2.5 eps / steps.
DEFAULT_STEPS = {"fgsm": 1, "pgd": 1, "patch": 5}
PATCH_STEP_SIZE = 64.0  # pixel values (of 255)


@dataclass(frozen=True)
class AdversarialTraining:
    """Each training step, a `ratio` share of the batch is perturbed against the current model to raise its loss:
    FGSM (one signed step of eps) or PGD (`steps` steps of `step_size`, null: 2.5 eps / steps), within eps pixel
    values and the pixel range; or a physical patch (`patch`): the pixels inside `mask` (glasses, eyes_band or square
    at `mask_scale`, drawn around the eyes of the aligned crops by metric.attacks.masks) are replaced by a pattern
    that starts uniform random in the range and takes `steps` signed steps of `step_size` pixel values, while every
    pixel outside the mask stays as it was. The objective is (1 - weight) * clean loss + weight * adversarial loss.
    The values live in conf/adversarial/*.yaml.

    `eps` is the budget of fgsm and pgd only (a patch is free in the range inside its mask); `mask`, `mask_scale`
    and `assume_aligned` (take the crops of face=none as aligned to the arcface template) are read by patch only,
    whose mask comes from the module's preprocessing record: `prepare(preprocess)` before the first `perturb`."""

    attack: str
    ratio: float
    weight: float
    eps: float | None = None
    steps: int | None = None  # null: 1 for fgsm and pgd, 5 for patch
    step_size: float | None = None  # pixel values; null: 2.5 eps / steps for pgd, 64 for patch
    mask: str = "glasses"
    mask_scale: float = 1.0
    assume_aligned: bool = False
    region: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)  # patch: (H, W) bool

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ConfigError(f"adversarial.attack={self.attack!r} is not one of {', '.join(ATTACKS)}.")
        for key in ("ratio", "weight"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                raise ConfigError(f"adversarial.{key}={getattr(self, key)} must be between 0 and 1.")
        if self.attack in LINF_ATTACKS and (self.eps is None or float(self.eps) <= 0):
            raise ConfigError(
                f"adversarial.eps={self.eps} must be > 0 for attack={self.attack} (pixel values of 255, e.g. 4)."
            )
        if self.attack == "patch" and self.eps is not None:
            raise ConfigError(
                f"adversarial.eps={self.eps} does not apply to attack=patch (the pattern is free in the "
                "pixel range inside its mask): remove it with ~adversarial.eps."
            )
        if self.steps is None:
            object.__setattr__(self, "steps", DEFAULT_STEPS[self.attack])
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 1:
            raise ConfigError(f"adversarial.steps={self.steps} must be an integer of at least 1.")
        if self.attack == "patch":
            self._check_patch()

    def _check_patch(self) -> None:
        if self.step_size is None:
            object.__setattr__(self, "step_size", PATCH_STEP_SIZE)
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, (int, float)) or self.step_size <= 0:
            raise ConfigError(
                f"adversarial.step_size={self.step_size!r} must be a number > 0 (pixel values of 255, "
                f"e.g. {PATCH_STEP_SIZE:g})."
            )
        check_mask(self.mask, "adversarial")
        if isinstance(self.mask_scale, bool) or not isinstance(self.mask_scale, (int, float)) or self.mask_scale <= 0:
            raise ConfigError(
                f"adversarial.mask_scale={self.mask_scale!r} must be one number > 0 (a multiple of the "
                "mask's size at scale 1, set by the eye distance), e.g. 1.0."
            )
        if not isinstance(self.assume_aligned, bool):
            raise ConfigError(f"adversarial.assume_aligned={self.assume_aligned!r} must be true or false.")

    def prepare(self, preprocess: dict) -> AdversarialTraining:
        """These settings ready for the training crops that `preprocess` (the datamodule's preprocessing record)
        describes: for patch, with its mask drawn once and checked to fit (refusing face=none crops unless
        assume_aligned); fgsm and pgd need nothing and come back as they are."""
        if self.attack != "patch":
            return self
        if "image_size" not in preprocess:
            raise ConfigError(
                "adversarial.attack=patch draws its mask on the training crops, but the module got no "
                "preprocessing record (image_size, face front end): pass the datamodule's "
                "`preprocessing` as the module's `preprocess`."
            )
        (mask,) = build_masks(preprocess, self.mask, [float(self.mask_scale)], self.assume_aligned, "adversarial")
        prepared = dataclasses.replace(self)
        object.__setattr__(prepared, "region", torch.from_numpy(mask))
        return prepared

    def perturb(
        self, net: torch.nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor
    ) -> torch.Tensor:
        """The batch of model inputs with a `ratio` share of its images perturbed to raise `loss_of` (computed with
        the net in eval mode, so the attack does not move BatchNorm statistics); inputs stay in range."""
        chosen = torch.rand(len(inputs), device=inputs.device) < self.ratio
        was_training = net.training
        net.eval()
        try:
            if self.attack == "patch":
                return self._patch(loss_of, inputs.detach(), chosen)
            step_size = input_units(self.step_size) if self.step_size is not None else None  # PGD only
            mask = chosen.view(-1, *([1] * (inputs.dim() - 1))).to(inputs.dtype)
            return linf_ascent(
                loss_of,
                inputs.detach(),
                input_units(self.eps),
                *INPUT_RANGE,
                self.attack,
                int(self.steps),
                step_size,
                mask,
            )
        finally:
            net.train(was_training)

    def _patch(
        self, loss_of: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, chosen: torch.Tensor
    ) -> torch.Tensor:
        """The chosen images wearing a pattern inside the mask: uniform random in range, then `steps` signed-gradient
        steps of `step_size` on the loss, clamped to range; torch.where keeps every other pixel bit for bit."""
        if self.region is None:
            raise RuntimeError("adversarial.attack=patch has no mask yet: call prepare(preprocess) before perturb.")
        if tuple(self.region.shape) != tuple(inputs.shape[-2:]):
            raise ConfigError(
                f"adversarial.attack=patch drew its mask for {tuple(self.region.shape)} crops, but the "
                f"batch holds {tuple(inputs.shape[-2:])} images: prepare it with this datamodule's "
                "preprocessing record."
            )
        low, high = INPUT_RANGE
        region = self.region.to(inputs.device) & chosen.view(-1, 1, 1, 1)  # (N, 1, H, W)
        pattern = torch.rand_like(inputs) * (high - low) + low
        alpha = input_units(float(self.step_size))
        for _ in range(int(self.steps)):
            pattern.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_of(torch.where(region, pattern, inputs)), pattern)
            with torch.no_grad():
                pattern = (pattern + alpha * grad.sign()).clamp(low, high)
        return torch.where(region, pattern.detach(), inputs)
