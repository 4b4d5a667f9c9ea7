"""The one embedding loop: a model and images in, L2-normalised embeddings out.

Training validation and the final test (per batch, through embed_batch), evaluate, calibrate, attacks, export
parity, the verifier and the gallery all embed through here, so a change to how images become embeddings (the
face front end, an external embedder) is made once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.normalisation import to_model_input

Model = Callable[[torch.Tensor], torch.Tensor]  # model input (N, C, H, W) -> embeddings (N, D)


def embed_batch(model: Model, inputs: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Embeddings of one batch of model inputs, float32 on the CPU; with flip, each averaged with its mirror
    image's and renormalised (test-time augmentation)."""
    embeddings = model(inputs)
    if flip:
        embeddings = F.normalize(embeddings + model(inputs.flip(-1)), dim=1)
    return embeddings.float().cpu()


@torch.no_grad()
def embed_images(model: Model, images: np.ndarray, flip: bool = False, batch: int = 256) -> np.ndarray:
    """Embeddings of uint8 images (N, H, W, C), `batch` at a time; a torch module runs in eval mode on its own
    device (and gets its mode back), any other callable (an ONNX session, say) as it is."""
    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    parameter = next(module.parameters(), None) if module is not None else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    out = [
        embed_batch(model, to_model_input(images[start : start + batch]).to(device), flip)
        for start in range(0, len(images), batch)
    ]
    if was_training:
        module.train()
    dim = out[0].shape[1] if out else 0
    return torch.cat(out).numpy() if out else np.zeros((0, dim), np.float32)
