"""Self-training (+experiment=self_train): a 2-round run on a tiny split reports every figure, and bad input gets
one clear message."""

import json

import numpy as np
import pytest
from PIL import Image

from datamodules.sources.unlabeled import UnlabeledData, UnlabeledSource
from datamodules.split import IdentitySplit
from metric.errors import ConfigError
from metric.pipelines.train import train

QUIET = ["trainer.enable_progress_bar=false", "trainer.max_epochs=1", "datamodule.image_size=[32,32]"]


# eight labelled identities, the rest an unlabeled pool; small confident clusters at a loose FAR
SMALL_POOL = ["unlabeled.labelled_identities=8", "self_train.min_cluster_size=2", "self_train.target_far=0.05"]


def self_train_cfg(make_cfg, ckpt, *overrides):
    return make_cfg("experiment=self_train", "teacher=ckpt", f"teacher.ckpt={ckpt}", "face=none", *QUIET, *overrides)


def test_two_rounds_report_every_figure(make_cfg, tiny_triplet_run, tmp_path):
    _, teacher_run = tiny_triplet_run
    cfg = self_train_cfg(make_cfg, teacher_run["best_checkpoint"], *SMALL_POOL, "self_train.rounds=2")
    summary = train(cfg)
    rows = summary["self_training_rounds"]
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert rows[0]["training_identities"] == 8 and rows[0]["test_eer"] is not None  # the labelled-only baseline
    for row in rows[1:]:
        for key in (
            "pseudo_identities",
            "images_kept",
            "pool_images",
            "purity",
            "true_identities_split",
            "test_eer",
            "teacher_test_eer",
            "threshold",
        ):
            assert row[key] is not None, key
        assert row["pool_images"] == 16 * 5  # the 16 training identities whose labels were hidden
        assert 0 < row["images_kept"] <= row["pool_images"] and 0 <= row["purity"] <= 1
        assert row["training_identities"] == 8 + row["pseudo_identities"]
        assert row["min_cluster_size_used"] == 3  # raised from 2 to the batches' K: smaller ones are never drawn
    assert rows[1]["teacher"] == "teacher" and rows[2]["teacher"] == "round 1 student"
    stored = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert len(stored["self_training_rounds"]) == 3
    assert all((tmp_path / "run" / f"round_{r}" / "summary.json").is_file() for r in range(3))


def test_no_confident_cluster_says_what_to_relax_before_any_training(make_cfg, tiny_triplet_run, tmp_path):
    _, teacher_run = tiny_triplet_run
    cfg = self_train_cfg(
        make_cfg,
        teacher_run["best_checkpoint"],
        "unlabeled.labelled_identities=8",
        "self_train.threshold=0.99999",
        "self_train.min_cluster_size=5",
    )
    with pytest.raises(ConfigError, match="no confident pseudo-identity.*lower self_train.min_cluster_size.*threshold"):
        train(cfg)
    assert not (tmp_path / "run" / "round_0").exists()  # not even the labelled-only baseline trained


def test_unlabeled_images_that_are_also_eval_images_are_left_out(tiny_datamodule):
    from metric.training.pseudo_labelling import without_eval_images

    train, test = tiny_datamodule.splits["train"], tiny_datamodule.splits["test"]
    images = np.concatenate([train.images[:4], test.images[:2]])
    pool = IdentitySplit(images, np.full(6, -1), [f"p{i}" for i in range(6)])
    data, dropped = without_eval_images(UnlabeledData(np.array([0]), pool, np.arange(6)), tiny_datamodule)
    assert dropped == 2 and data.pool.sources == ["p0", "p1", "p2", "p3"] and data.truth.tolist() == [0, 1, 2, 3]


def test_a_teacher_reading_other_crops_is_refused(make_cfg):
    cfg = make_cfg("experiment=self_train", "face=none", *QUIET, "unlabeled.labelled_identities=8")  # teacher=dlib
    with pytest.raises(ConfigError, match="teacher=dlib reads faces cut by face=dlib face.template=dlib"):
        train(cfg)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["module=adapt"], "self-training trains a timm student"),
        (["trainer=ddp_cpu"], "runs its rounds in one process"),
        (["self_train.k=5"], "use it with self_train.method=kmeans"),
        (["teacher=ckpt"], "teacher=ckpt needs its checkpoint"),
        (["self_train.linkage=ward"], "self_train.linkage='ward' is not one of"),
        (["self_train.threshold=2"], "must be a cosine similarity in"),
        (["trainer.devices=2"], "runs its rounds in one process"),
    ],
)
def test_settings_it_cannot_run_with_are_refused_first(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg("experiment=self_train", "face=none", "unlabeled.labelled_identities=8", *overrides))


def test_unlabeled_settings_are_checked():
    with pytest.raises(ConfigError, match="unlabeled.root=<folder of images>"):
        UnlabeledSource()
    with pytest.raises(ConfigError, match="unlabeled.labelled_identities=1.5"):
        UnlabeledSource(labelled_identities=1.5)


@pytest.fixture
def tiny_datamodule(make_cfg):
    from metric.config_factory import build_from_config

    datamodule = build_from_config(make_cfg().datamodule)
    datamodule.setup("fit")
    return datamodule


def test_an_empty_unlabeled_folder_is_one_message(tmp_path, tiny_datamodule):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError, match="unlabeled.root=.*empty.*holds no image"):
        UnlabeledSource(root=str(tmp_path / "empty")).load(tiny_datamodule)


@pytest.mark.parametrize("layout", ["any", "us10k"])
def test_a_folder_of_unlabeled_images_is_read_like_the_labelled_data(tmp_path, tiny_datamodule, layout):
    folder = tmp_path / "faces" / ("Face Images" if layout == "us10k" else "nested/deeper")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).save(folder / f"p{i}.jpg")
    data = UnlabeledSource(root=str(tmp_path / "faces"), max_images=5).load(tiny_datamodule)
    assert data.pool.images.shape == (5, 32, 32, 3) and (data.pool.labels == -1).all() and data.truth is None
    assert data.labelled.size == tiny_datamodule.splits["train"].num_identities  # every labelled identity is kept


def test_cross_validation_reports_each_round_across_folds(make_cfg, tiny_triplet_run):
    _, teacher_run = tiny_triplet_run
    cfg = self_train_cfg(
        make_cfg,
        teacher_run["best_checkpoint"],
        *SMALL_POOL,
        "self_train.rounds=1",
        "self_train.baseline=false",
        "cv.folds=3",
        "cv.fold=0",
    )
    summary = train(cfg)
    (row,) = summary["self_training_rounds"]
    assert row["round"] == 1 and row["folds"] == 1 and row["purity"] is not None and row["test_eer"] is not None
    assert summary["test_eer"] == row["test_eer"]  # the cross-validated summary is the last round's students'
