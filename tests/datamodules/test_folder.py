"""datamodule=folder: any <root>/<identity>/<image> tree, identity-disjoint splits, bad files skipped and listed."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.records import natural_key
from datamodules.sources.folder import FolderDataModule
from datamodules.split import check_identity_disjoint
from metric.errors import ConfigError
from metric.pipelines.train import train
from tests.conftest import REPO_ROOT, ordered_folder
from tests.datamodules.small import small_datamodule

ORL = REPO_ROOT.parent / "shared" / "data" / "att_faces"
FORMATS = [("PNG", ".png"), ("JPEG", ".jpg"), ("PPM", ".pgm"), ("BMP", ".bmp"), ("WEBP", ".webp")]


def make_tree(root: Path, identities: int = 8, images: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for i in range(identities):
        folder = root / f"person{i + 1}"
        folder.mkdir(parents=True)
        for j in range(images):
            fmt, suffix = FORMATS[(i + j) % len(FORMATS)]
            pixels = rng.integers(0, 255, (20, 16), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{j}{suffix}", format=fmt)
    (root / "person1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "person2" / "notes.txt").write_text("not an image, ignored")
    return root


def make(root, tmp_path, **kw):
    report = str(tmp_path / "run" / "bad_files.txt")
    settings = {"image_size": (24, 20), "channels": 1, "batch_identities": 3, "bad_files_report": report}
    return small_datamodule(FolderDataModule, root, **{**settings, **kw})


def test_ordered_split_follows_natural_order(tmp_path):
    dm = make(make_tree(tmp_path / "faces", identities=12), tmp_path, split="ordered", split_counts=[8, 2, 2])
    dm.setup()

    def names(split):
        return sorted({Path(s).parent.name for s in dm.splits[split].sources}, key=natural_key)

    assert names("train") == [f"person{i}" for i in range(1, 9)]
    assert names("val") == ["person9", "person10"] and names("test") == ["person11", "person12"]
    assert dm.splits["train"].images.shape[1:] == (24, 20, 1)


def test_identity_split_is_seeded_and_disjoint(tmp_path):
    root = make_tree(tmp_path / "faces", identities=20)
    a, b, c = (make(root, tmp_path, seed=s, split_fractions=[0.6, 0.2, 0.2]) for s in (0, 0, 1))
    for dm in (a, b, c):
        dm.setup()
        check_identity_disjoint(dm.splits)
    assert a.splits["test"].sources == b.splits["test"].sources
    assert a.splits["test"].sources != c.splits["test"].sources
    assert [a.splits[s].num_identities for s in ("train", "val", "test")] == [12, 4, 4]


def test_corrupt_image_is_skipped_counted_and_listed(tmp_path, capsys):
    dm = make(make_tree(tmp_path / "faces"), tmp_path, split="ordered", split_counts=[4, 2, 2])
    dm.setup()
    assert "skipped 1 image file(s): 1 unreadable or missing, 0 without a face" in capsys.readouterr().out
    listed = (tmp_path / "run" / "bad_files.txt").read_text()
    assert "broken.jpg" in listed
    assert len(dm.splits["train"].labels) == 4 * 5  # every good image, the broken one left out


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda root: None, "is not a folder"),
        (lambda root: root.mkdir(), "holds no identity folder with images"),
    ],
)
def test_missing_or_empty_root_names_the_path_and_the_tree(tmp_path, setup, message):
    root = tmp_path / "nowhere"
    setup(root)
    with pytest.raises(ConfigError, match=message) as error:
        make(root, tmp_path).setup()
    assert str(root) in str(error.value) and "<identity 1>/" in str(error.value)


def test_trains_and_evaluates_on_real_orl_faces(make_cfg):
    if not ORL.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the ORL faces are missing at {ORL}")
        pytest.skip(f"the ORL faces are not at {ORL}")
    cfg = make_cfg(
        "experiment=triplet",
        *ordered_folder(ORL, "[30,5,5]"),
        "datamodule.image_size=[28,24]",
        "datamodule.channels=1",
        "datamodule.batch_identities=8",
        "datamodule.batch_images_per_identity=5",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        tiny=False,
    )
    summary = train(cfg)
    assert summary["test_identities"] == 5 and summary["test_images"] == 50
    assert summary["test_genuine_pairs"] == 225 and summary["test_impostor_pairs"] == 1000
    assert summary["test_tar_at_far_0.001"] is None  # 1000 impostor pairs cannot support FAR=1e-3
    assert summary["calibration_warning"] is not None
    assert 0.0 <= summary["test_eer"] < 0.5
