"""Multi-process training helpers: global batches for mining, validation gathered in order, DDP under Hydra."""

from __future__ import annotations

import os
import sys

import pytorch_lightning as pl
import torch


def gather_batch(module: pl.LightningModule, embeddings: torch.Tensor, labels: torch.Tensor):
    """The global batch of every rank (embeddings keep their gradient), so mining and the loss see negatives
    from all ranks; unchanged in a single process.

    Each rank computes the same global loss; the gather's backward sums the ranks' gradients for each rank's
    slice and DDP then averages the parameters' gradients, which gives exactly the global loss's gradient.
    """
    if module.trainer is None or module.trainer.world_size == 1:
        return embeddings, labels
    every = module.all_gather(embeddings, sync_grads=True)  # (world, batch, dim)
    return every.flatten(0, 1), module.all_gather(labels).flatten(0, 1)


def gather_in_order(module: pl.LightningModule, local: torch.Tensor) -> torch.Tensor:
    """Rows sharded as rank, rank + world, ... (see datamodules.base.SplitBatches), gathered from every
    rank back into their original order; unchanged in a single process."""
    world = module.trainer.world_size if module.trainer is not None else 1
    if world == 1:
        return local
    total = int(module.all_gather(torch.tensor(len(local), device=module.device)).sum())
    rows = -(-total // world)  # ranks hold ceil or floor of total / world rows: pad to the same length
    padded = torch.zeros((rows, *local.shape[1:]), dtype=local.dtype, device=module.device)
    padded[: len(local)] = local.to(module.device)
    every = module.all_gather(padded).cpu()  # (world, rows, ...)
    ordered = every.transpose(0, 1).reshape(rows * world, *local.shape[1:])  # row j of rank r -> j * world + r
    return ordered[:total]


# What Lightning's launcher writes into the parent's environment when it starts the other ranks.
LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def end_process_group(env_before: set[str]) -> None:
    """Close this job's process group after fitting, and drop the launcher's variables that were not there
    before it (`env_before`). The next job of a `-m` sweep runs in the same process: Lightning would reuse an
    open group whose other ranks have exited, and, seeing LOCAL_RANK, would take itself for a child and never
    start the other ranks."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key in LAUNCHER_ENV:
        if key not in env_before:
            os.environ.pop(key, None)


def run_ddp_children_as_this_job() -> None:
    """Make Lightning's DDP child processes re-run this one Hydra job, never the whole sweep.

    Lightning starts ranks 1..n-1 by re-running the command line with `hydra.run.dir` set to the parent's
    *run* directory. Under `-m` that line still holds `-m` and the sweep's lists, so every child would start
    the sweep again. The replacement gives each child this job's own overrides and output directory instead.
    """
    from lightning_fabric.strategies.launchers import subprocess_script as fabric_launcher
    from pytorch_lightning.strategies.launchers import subprocess_script as trainer_launcher

    fabric_launcher._hydra_subprocess_cmd = _child_command
    trainer_launcher._hydra_subprocess_cmd = _child_command


def _child_command(local_rank: int) -> tuple[list[str], str]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    import __main__

    hydra = HydraConfig.get()
    entry = [sys.executable, "-m", __main__.__spec__.name] if __main__.__spec__ else [sys.executable, sys.argv[0]]
    overrides = [o for o in hydra.overrides.task if not o.startswith("hydra.")]
    command = (
        entry
        + overrides
        + [
            f'hydra.run.dir="{hydra.runtime.output_dir}"',
            f"hydra.job.name={hydra.job.name}_rank{local_rank}",
            "hydra.output_subdir=null",
        ]
    )
    return command, get_original_cwd()
