"""Shared by the attack tests: one torch thread, and a second model for transfer."""

import pytest
import torch

from metric.model.checkpoint import CHECKPOINT_KEY, write_checkpoint
from metric.pipelines.calibrate import calibrate_checkpoint
from tests.conftest import TINY_DATA, compose_config


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on 2 cores shared with other work, two threads make each small step many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def other_model(tiny_triplet_run, tmp_path_factory, data_dir):
    """A second, different model: the tiny checkpoint with every weight jittered (seeded), calibrated afresh on the
    validation identities. Training a second net would cost more than every test here together."""
    checkpoint = torch.load(tiny_triplet_run[1]["best_checkpoint"], map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(1)
    for key, value in checkpoint["state_dict"].items():
        if value.is_floating_point() and value.numel() > 1 and "running" not in key:
            checkpoint["state_dict"][key] = value + 0.3 * value.std() * torch.randn(value.shape, generator=generator)
    checkpoint[CHECKPOINT_KEY]["calibrations"] = {}
    path = tmp_path_factory.mktemp("other_model") / "other.ckpt"
    write_checkpoint(path, checkpoint)
    cfg = compose_config(
        "calibrate",
        [*TINY_DATA, f"ckpt={path}", "matcher.target_far=0.01", "allow_unsupported_far=true"],
        path.parent,
        data_dir,
    )
    calibrate_checkpoint(cfg)
    return path
