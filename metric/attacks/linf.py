"""L-infinity sign-gradient ascent (FGSM, PGD), shared by metric.attack and adversarial training."""

from __future__ import annotations

from collections.abc import Callable

import torch


def linf_ascent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    eps: float,
    low: float,
    high: float,
    kind: str = "fgsm",
    steps: int = 10,
    step_size: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inputs within |x - start|_inf <= eps and [low, high] that raise the scalar objective(x).

    FGSM takes one step of eps along the sign of the gradient; PGD takes `steps` steps of `step_size` (default
    2.5 eps / steps), projecting back into the budget after each. `mask` (broadcastable to x, 0 or 1) keeps the
    inputs where it is 0 at `start`."""
    n_steps, alpha = (1, eps) if kind == "fgsm" else (steps, step_size or 2.5 * eps / steps)
    x = start.detach().clone()
    for _ in range(n_steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x), x)
        with torch.no_grad():
            step = alpha * grad.sign()
            x = x + (step if mask is None else step * mask)
            x = torch.min(torch.max(x, start - eps), start + eps).clamp(low, high)
    return x.detach()
