"""The face front end end to end on real faces (slow, about 3 minutes on 2 cores): a model trained with face=dlib on
ORL crops of s1-s20 scores the test identities s26-s40 as well on the same faces pasted into larger photos
(random place, scale 1-3x, rotation up to 20 degrees, noise background) as on the original crops."""

from __future__ import annotations

import pytest

from tests.conftest import ORL, compose_evaluate, compose_train
from tests.datamodules.test_faces import require_orl

SPLIT = [
    "datamodule=folder",
    "datamodule.split=ordered",
    "datamodule.split_counts=[20,5,15]",
    "datamodule.channels=1",
    "datamodule.image_size=[32,32]",
]


@pytest.mark.slow
def test_eer_on_pasted_photos_is_within_a_point_of_the_crops(tmp_path, data_dir):
    require_orl()
    from datamodules.sources.pasted import paste_tree
    from metric.pipelines.evaluate import evaluate
    from metric.pipelines.train import train

    photos = tmp_path / "photos"
    paste_tree(ORL, photos, seed=0)
    cfg = compose_train(
        [
            "experiment=small_real",
            *SPLIT,
            f"datamodule.root={ORL}",
            "face=dlib",
            "face.margin=-0.1",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "train",
        data_dir,
    )
    ckpt = train(cfg)["best_checkpoint"]
    eer = {}
    for name, root in (("crops", ORL), ("photos", photos)):
        out = tmp_path / name
        summary = evaluate(
            compose_evaluate([f"ckpt={ckpt}", *SPLIT, f"datamodule.root={root}", "threshold_from=val"], out, data_dir),
            out,
        )
        assert summary["face"]["name"] == "dlib" and (out / "faces.png").exists()
        eer[name] = summary["test_eer"]
    assert abs(eer["photos"] - eer["crops"]) <= 0.01, eer
