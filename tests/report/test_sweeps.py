"""Hydra multirun sweeps: one directory and summary per job, the sweep summary table, the Optuna search stored in
SQLite (and resumed), and the SLURM launcher config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

from metric import sweep_summary
from metric.pipelines.sweep_summary import collect
from metric.report import sweep_table
from tests.conftest import CONF_DIR, REPO_ROOT, TINY_DATA

FAST = [*TINY_DATA, "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def run_train(*args: str, data_dir) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "metric.train", *args, f"paths.data_dir={data_dir}", *FAST]
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "offline"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_multirun_runs_every_job_and_the_summary_collects_them(tmp_path, data_dir, capsys):
    sweep = tmp_path / "sweep"
    run_train(
        "-m",
        "+experiment=triplet",
        "model.backbone=resnet10t,mobilenetv2_050",
        "loss.margin=0.1,0.2",
        f"hydra.sweep.dir={sweep}",
        data_dir=data_dir,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    for job in jobs:
        assert (job / "summary.json").is_file() and (job / "checkpoints" / "last.ckpt").is_file()

    assert sweep_summary.main([str(sweep)]) == 0
    markdown = (sweep / "sweep_summary.md").read_text()
    assert "model.backbone" in markdown and "loss.margin" in markdown and "experiment" not in markdown
    rows = (sweep / "sweep_summary.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 5 and {"experiment", "loss.margin", "model.backbone"} <= set(header)
    assert header[-len(sweep_table.RESULT_COLUMNS) - 1 :] == [*sweep_table.RESULT_COLUMNS, "status"]
    eers = [json.loads((sweep / r.split(",")[0] / "summary.json").read_text())["best_val_eer"] for r in rows[1:]]
    assert eers == sorted(eers)


def test_sweep_summary_sorts_by_validation_eer_and_keeps_failed_jobs(tmp_path):
    def job(name: str, overrides: list[str], summary: dict | None):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("\n".join(f"- {o}" for o in overrides))
        if summary is not None:
            (tmp_path / name / "summary.json").write_text(json.dumps(summary))

    job("0", ["+experiment=triplet", "loss.margin=0.1"], {"best_val_eer": 0.2, "test_eer": 0.25})
    job("1", ["+experiment=triplet", "loss.margin=0.2"], {"best_val_eer": 0.1, "test_eer": 0.3})
    job("2", ["+experiment=triplet", "loss.margin=0.3"], None)
    rows = collect(tmp_path)
    assert [r["job"] for r in rows] == ["1", "0", "2"]
    assert rows[2]["status"].startswith("no summary") and rows[2]["test_eer"] is None
    assert sweep_table.varying_keys(rows) == ["loss.margin"]
    assert sweep_summary.main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow  # 40 s of Optuna trials: kept out of the default suite to hold it near 5 minutes
def test_optuna_search_minimises_best_val_eer_and_resumes_from_sqlite(tmp_path, data_dir):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    common = ["+experiment=triplet", "hparams_search=optuna", f"paths.log_dir={tmp_path}"]
    run_train(*common, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'first'}", data_dir=data_dir)
    run_train(*common, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path / 'resumed'}", data_dir=data_dir)
    study = optuna.load_study(study_name="triplet-search", storage=f"sqlite:///{tmp_path}/optuna/triplet-search.db")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 3  # the second run resumed the stored study
    assert set(trials[0].params) == {"optimizer.lr", "loss.margin", "miner", "model.embedding_dim"}
    best = [json.loads(p.read_text())["best_val_eer"] for p in tmp_path.glob("*/*/summary.json")]
    assert sorted(t.value for t in trials) == pytest.approx(sorted(best))  # each trial's value: its best val EER


def test_slurm_launcher_config_sets_the_submitit_parameters(monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setenv("SLURM_NNODES", "2")
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(
            config_name="train",
            return_hydra_config=True,
            overrides=[
                "experiment=triplet",
                "trainer=ddp",
                "hydra/launcher=slurm",
                "hydra.launcher.nodes=2",
                "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.timeout_min=600",
            ],
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 600)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2  # the trainer follows the allocation


def test_wandb_group_is_the_sweep_inside_a_multirun(monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from metric.report.wandb_logger import sweep_group

    assert sweep_group() is None or not HydraConfig.initialized()
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(
        HydraConfig,
        "get",
        staticmethod(
            lambda: SimpleNamespace(
                mode=RunMode.MULTIRUN, sweep=SimpleNamespace(dir="outputs/train/multiruns/2026-11-22_10-00-00")
            )
        ),
    )
    assert sweep_group() == "sweep-2026-11-22_10-00-00"


@pytest.mark.slow  # a multi-minute run on 2 cores: `pytest -m slow`
def test_cross_validated_jobs_compare_in_a_sweep(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    run_train(
        "-m", "+experiment=triplet", "cv.folds=2", "loss.margin=0.1,0.2", f"hydra.sweep.dir={sweep}", data_dir=data_dir
    )
    rows = collect(sweep)
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows)
    for r in rows:  # each job's numbers are its folds' means
        folds = json.loads((sweep / r["job"] / "summary.json").read_text())["per_fold"]
        assert r["test_eer"] == pytest.approx(sum(f["test_eer"] for f in folds) / 2)
        assert r["best_val_eer"] == pytest.approx(sum(f["best_val_eer"] for f in folds) / 2)
        assert r["test_eer_std"] is not None
