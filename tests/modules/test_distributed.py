"""DDP on CPU: two real processes draw disjoint whole identity groups, and the validation EER logged by a
2-process run equals a single-process evaluation of the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metric.config_factory import build_from_config
from metric.metrics import verification as V
from metric.model.checkpoint import build_model, read_checkpoint
from metric.scoring.embed import embed_images
from metric.scoring.pairs import pair_scores
from tests.conftest import REPO_ROOT, TINY_DATA

DDP_DATA = [o for o in TINY_DATA if "batch_identities" not in o] + ["datamodule.batch_identities=4"]


def _draw_batches(rank: int, world: int, datamodule, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    datamodule.trainer = SimpleNamespace(world_size=world, global_rank=rank)
    batches = [labels.tolist() for _, labels in datamodule.train_dataloader()]
    every = [None] * world
    dist.all_gather_object(every, batches)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(every, f)
    dist.destroy_process_group()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_draw_disjoint_whole_groups(make_cfg, tmp_path):
    cfg = make_cfg(*DDP_DATA[-1:])
    datamodule = build_from_config(cfg.datamodule)
    datamodule.setup("fit")
    out = tmp_path / "batches.json"
    mp.spawn(_draw_batches, args=(2, datamodule, free_port(), str(out)), nprocs=2, join=True)
    rank0, rank1 = json.loads(out.read_text())
    assert len(rank0) == len(rank1) > 0
    k = cfg.datamodule.batch_images_per_identity
    for a, b in zip(rank0, rank1):
        for batch in (a, b):
            ids, counts = np.unique(batch, return_counts=True)
            assert ids.size == cfg.datamodule.batch_identities and (counts == k).all()
        assert not set(a) & set(b)


@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory, data_dir):
    """A 2-job `-m` sweep, each job trained by 2 CPU processes (trainer=ddp_cpu)."""
    out = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable,
        "-m",
        "metric.train",
        "-m",
        "+experiment=triplet",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "loss.margin=0.1,0.2",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={out}",
        *DDP_DATA,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout + result.stderr


def test_ddp_validation_eer_equals_single_process_evaluation(ddp_sweep, make_cfg):
    job = ddp_sweep[0] / "0"
    summary = json.loads((job / "summary.json").read_text())
    checkpoint = read_checkpoint(summary["best_checkpoint"])
    net, _ = build_model(checkpoint)
    datamodule = build_from_config(make_cfg(*DDP_DATA).datamodule)
    datamodule.setup("validate")
    val = datamodule.splits["val"]
    scores, genuine = pair_scores(
        embed_images(net, val.images), val.labels, max_impostor_pairs=datamodule.max_impostor_pairs
    )
    single_process = V.eer(V.roc(scores, genuine))[0]
    assert summary["best_val_eer"] == pytest.approx(single_process, abs=1e-6)
    assert torch.isfinite(torch.tensor(summary["test_eer"]))


def test_ddp_inside_a_sweep_runs_each_job_once(ddp_sweep):
    out, log = ddp_sweep
    assert log.count("Launching 2 jobs") == 1  # the rank-1 processes did not start the sweep again
    for job in ("0", "1"):
        assert (out / job / "summary.json").is_file()
        assert (out / job / "train_rank1.log").is_file()  # rank 1 re-ran this job, into this job's directory


def test_ddp_children_rerun_this_job_not_the_sweep(monkeypatch):
    """Under `-m`, Lightning would re-run the whole command line (and the sweep) in each child process."""
    from hydra.core.hydra_config import HydraConfig

    from metric.training import distributed

    job = SimpleNamespace(
        overrides=SimpleNamespace(task=["experiment=triplet", "loss.margin=0.2", "hydra.launcher.n_jobs=2"]),
        runtime=SimpleNamespace(output_dir="/runs/multirun/3"),
        job=SimpleNamespace(name="train"),
    )
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: job))
    monkeypatch.setattr("hydra.utils.get_original_cwd", lambda: "/work")
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "experiment=triplet", "loss.margin=0.1,0.2"])
    command, cwd = distributed._child_command(1)
    assert command[1:3] != ["-m", "-m"] and command.count("-m") <= 1  # at most python's own `-m module`
    assert "loss.margin=0.2" in command and "loss.margin=0.1,0.2" not in command
    assert 'hydra.run.dir="/runs/multirun/3"' in command and "hydra.output_subdir=null" in command
    assert not any(c.startswith("hydra.launcher") for c in command)
    assert cwd == "/work"
