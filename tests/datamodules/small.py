"""A dataset class on a small fixture tree: the tests' P x K batches of 2 x 2 unless they say otherwise."""

from __future__ import annotations

from pathlib import Path


def small_datamodule(cls: type, root: Path, **settings):
    """`cls(root=root, ...)` with 2 identities x 2 images per batch, `settings` overriding any of it."""
    return cls(**{"root": str(root), "batch_identities": 2, "batch_images_per_identity": 2, **settings})
