"""W&B offline run: the run directory holds the config, per-epoch metrics, plots, tables and the checkpoint artifact,
and no network was touched."""

from __future__ import annotations

import socket
import threading

import pytest

from metric.report.wandb_logger import MetricWandbLogger
from tests.report.wandb_records import run_contents


class ConnectionCounter:
    """A local TCP server that counts the connections it receives (and closes them)."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.server.close()


def test_checkpoint_artifact_defaults_follow_the_mode():
    assert MetricWandbLogger(mode="offline", project="p").checkpoint_artifact is False
    assert MetricWandbLogger(mode="online", project="p").checkpoint_artifact is True
    assert MetricWandbLogger(mode="offline", project="p", checkpoint_artifact=True).checkpoint_artifact is True


def test_offline_run_directory_holds_the_dashboard(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from metric.pipelines.train import train

    counter = ConnectionCounter()  # every W&B endpoint and proxy points here: any network use would show up
    for name in ("WANDB_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{counter.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = make_cfg(
        "experiment=triplet",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=wandb",
        "logger.wandb.checkpoint_artifact=true",
        "logger.wandb.tags=[test]",
    )
    try:
        summary = train(cfg)
    finally:
        counter.close()
    assert counter.count == 0

    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    found = run_contents(runs[0])
    # the whole composed config
    assert {"datamodule", "model", "loss", "miner", "optimizer", "trainer", "logger", "seed"} <= found["config"]
    # per-epoch metrics
    assert {"train_loss", "train_active_triplet_fraction", "val_eer", "val_tar_at_far_1e-2", "lr-AdamW"} <= found[
        "history"
    ]
    # ROC and DET as W&B line plots, score histograms, the two tables
    assert {"_wandb/visualize/test/roc", "_wandb/visualize/test/det"} <= found["config"]
    assert {"test/roc_table/_type", "test/det_table/_type"} <= found["history"]
    assert {"test/genuine_scores/_type", "test/impostor_scores/_type"} <= found["history"]
    assert {"test/worst_pairs/_type", "test/embeddings/_type"} <= found["history"]
    assert "summary/test_eer" in found["summary"]
    artifacts = found["artifacts"]
    worst = next(paths for name, (kind, paths) in artifacts.items() if "worst_pairs" in name)
    embeddings = next(paths for name, (kind, paths) in artifacts.items() if "embeddings" in name)
    assert any(p.endswith(".png") for p in worst) and any(p.endswith(".png") for p in embeddings)  # thumbnails
    model = [paths for name, (kind, paths) in artifacts.items() if kind == "model"]
    assert model == [["best.ckpt"]]
    assert summary["best_checkpoint"]
