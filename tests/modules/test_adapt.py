"""+experiment=adapt: a head on a frozen embedder's cached outputs; the cache, and the fallback to the frozen
embedder when the head is worse on validation."""

from __future__ import annotations

import numpy as np
import pytest

from metric.model.checkpoint import CHECKPOINT_KEY, build_model, read_checkpoint
from metric.model.embedders import OnnxEmbedder
from metric.pipelines.train import train
from metric.scoring.embed import embed_images
from tests.model.test_embedders import exported_onnx

pytest.importorskip("onnxruntime")


@pytest.fixture
def onnx_model(tiny_triplet_run, tmp_path) -> str:
    return exported_onnx(tiny_triplet_run, tmp_path / "model.onnx")


def adapt(make_cfg, onnx_model, tmp_path, *extra):
    return make_cfg(
        "experiment=adapt",
        "model=onnx",
        f"model.path={onnx_model}",
        "model.input_size=[32,32]",
        "face=none",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        f"adapt.cache_dir={tmp_path / 'features'}",
        "matcher.target_far=0.01",
        *extra,
    )


def test_adapt_embeds_each_image_once_and_a_second_run_not_at_all(make_cfg, onnx_model, tmp_path, monkeypatch):
    calls = []
    real = OnnxEmbedder.embed_pixels
    monkeypatch.setattr(
        OnnxEmbedder, "embed_pixels", lambda self, pixels: calls.append(len(pixels)) or real(self, pixels)
    )
    summary = train(adapt(make_cfg, onnx_model, tmp_path))
    images = 36 * 5  # every image of the tiny synthetic split, train + val + test
    assert sum(calls) == images and summary["data_adapt_images_embedded"] == images
    calls.clear()
    again = train(adapt(make_cfg, onnx_model, tmp_path))  # a new run: every output comes from the cache
    assert sum(calls) == 0 and again["data_adapt_images_embedded"] == 0
    assert summary["adapt_kept"] in ("head", "frozen embedder")
    record = read_checkpoint(summary["best_checkpoint"])[CHECKPOINT_KEY]
    assert record["net"]["kind"] == "adapted" and record["net"]["embedder"]["kind"] == "onnx"


def test_a_broken_head_falls_back_to_the_frozen_embedder(make_cfg, onnx_model, tmp_path):
    """A 2-d head that never learns (lr 0) is worse on validation: the run keeps the frozen embedder."""
    summary = train(adapt(make_cfg, onnx_model, tmp_path, "adapt.embedding_dim=2", "optimizer.lr=0"))
    assert summary["adapt_kept"] == "frozen embedder"
    assert summary["adapt_val_eer_head"] >= summary["adapt_val_eer_frozen"]
    checkpoint = read_checkpoint(summary["best_checkpoint"])
    assert checkpoint[CHECKPOINT_KEY]["adapt"]["kept"] == "frozen embedder"
    net, _ = build_model(checkpoint)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    frozen = embed_images(OnnxEmbedder(onnx_model, [32, 32]), images)
    assert net.embedding_dim == frozen.shape[1]
    assert np.abs(embed_images(net, images) - frozen).max() < 1e-6


def test_distillation_from_an_onnx_teacher_looks_its_embeddings_up(make_cfg, onnx_model, tmp_path):
    """+experiment=distill teacher=onnx: the teacher embeds each image once; every training target is a lookup."""
    cfg = make_cfg(
        "experiment=distill",
        "teacher=onnx",
        f"teacher.model.path={onnx_model}",
        "teacher.model.input_size=[32,32]",
        f"teacher.cache_dir={tmp_path / 'teacher'}",
        "model.backbone=resnet10t",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "matcher.target_far=0.01",
    )
    summary = train(cfg)
    assert summary["teacher_images_embedded"] == 36 * 5
    assert summary["teacher_targets_computed_online"] == 0 and summary["teacher_targets_from_cache"] > 0
    assert 0 <= summary["teacher_test_eer"] <= 1 and summary["test_eer"] is not None


def test_distillation_needs_a_teacher_file(make_cfg):
    from metric.errors import ConfigError
    from metric.pipelines.fit import build

    with pytest.raises(ConfigError, match="teacher.model.path=<file.onnx>"):
        build(make_cfg("experiment=distill", "teacher=onnx"))


def test_adapt_refuses_a_classification_loss_before_reading_data(make_cfg, onnx_model, tmp_path):
    from metric.errors import ConfigError
    from metric.pipelines.checks import check_components

    with pytest.raises(ConfigError, match="adapt trains its head with a metric loss"):
        check_components(adapt(make_cfg, onnx_model, tmp_path, "loss=arcface", "~miner"))
