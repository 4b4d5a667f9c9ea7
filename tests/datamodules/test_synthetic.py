"""The embedded synthetic faces: deterministic, lossless PNG cache, identity-disjoint, not trivial."""

import numpy as np
from PIL import Image

from datamodules.sources.synthetic import SyntheticFacesDataModule, render_identity_images
from datamodules.split import check_identity_disjoint
from metric.baselines.classical import ClassicalBaseline
from metric.metrics import verification as V
from metric.scoring.pairs import pair_scores


def make(cache_dir, **kw):
    args = dict(
        train_identities=10,
        val_identities=4,
        test_identities=4,
        images_per_identity=4,
        image_size=(32, 32),
        batch_identities=4,
        batch_images_per_identity=2,
    )
    args.update(kw)
    return SyntheticFacesDataModule(cache_dir=str(cache_dir), **args)


def test_rendering_is_deterministic_and_identities_differ():
    a = render_identity_images(3, 2, (32, 32), seed=0)
    b = render_identity_images(3, 2, (32, 32), seed=0)
    c = render_identity_images(4, 2, (32, 32), seed=0)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[0] == c[0]).all()
    assert a[0].dtype == np.uint8 and a[0].shape == (32, 32, 3)


def test_cache_is_png_lossless_and_reused(tmp_path):
    dm = make(tmp_path)
    dm.setup()
    files = sorted(dm.cache_path.glob("*"))
    assert {f.suffix for f in files} == {".png", ".csv", ".json"}
    first = dm.splits["train"]
    # the PNG holds exactly the rendered pixels
    assert (np.asarray(Image.open(first.sources[0])) == render_identity_images(0, 1, (32, 32), 0)[0]).all()
    mtime = (dm.cache_path / "manifest.json").stat().st_mtime_ns
    again = make(tmp_path)
    again.setup()
    assert (again.cache_path / "manifest.json").stat().st_mtime_ns == mtime  # not rewritten
    assert (again.splits["train"].images == first.images).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_settings_change_the_cache_key(tmp_path):
    assert make(tmp_path).cache_path != make(tmp_path, image_size=(40, 40)).cache_path


def test_half_written_cache_is_not_trusted(tmp_path):
    dm = make(tmp_path)
    dm.cache_path.mkdir(parents=True)
    (dm.cache_path / "index.csv").write_text("file,identity,split\n")  # a killed run: no manifest
    dm.setup()
    assert len(dm.splits["train"].labels) == 40


def test_splits_are_identity_disjoint(tmp_path):
    dm = make(tmp_path)
    dm.setup()
    check_identity_disjoint(dm.splits)
    ids = [set(dm.splits[s].labels.tolist()) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert [len(i) for i in ids] == [10, 4, 4]


def test_raw_pixel_baseline_is_not_trivial(tmp_path):
    """The claim of README.md's results table: raw-pixel cosine EER on the test identities is above 15%."""
    dm = make(
        tmp_path, train_identities=4, val_identities=2, test_identities=40, images_per_identity=10, image_size=(64, 64)
    )
    dm.setup()
    test = dm.splits["test"]
    eer, _ = V.eer(V.roc(*pair_scores(ClassicalBaseline().embed(test.images), test.labels)))
    assert eer > 0.15
