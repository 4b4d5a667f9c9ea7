"""CelebA, K-Face and 10K US loaders on fixture trees built here in the official layouts."""

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.augment import BasicAugment
from datamodules.records import ImageRecord, take_subset
from datamodules.sources.celeba import CelebADataModule
from datamodules.sources.kface import KFaceDataModule, parse_selection, read_box
from datamodules.sources.us10k import US10kDataModule, US10kDistractors
from metric.errors import ConfigError
from metric.pipelines.train import train
from tests.datamodules.small import small_datamodule
from tests.datamodules.test_synthetic import make as synthetic

RNG = np.random.default_rng(0)


def save_jpeg(path: Path, size=(40, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="JPEG")


# -- CelebA ---------------------------------------------------------------------------------------------
def make_celeba(root: Path, identities=8, per_identity=4, leak: bool = False) -> Path:
    """The last 4 identities are val (2) and test (2); `leak` puts one image of identity 1 in val too."""
    lines_id, lines_part, lines_lm = [], [], []
    n = 0
    for identity in range(1, identities + 1):
        partition = 0 if identity <= identities - 4 else (1 if identity <= identities - 2 else 2)
        for k in range(per_identity):
            n += 1
            name = f"{n:06d}.jpg"
            save_jpeg(root / "img_align_celeba" / name, size=(178 // 4, 218 // 4))
            part = 1 if (leak and identity == 1 and k == 0) else partition
            lines_id.append(f"{name} {identity}")
            lines_part.append(f"{name} {part}")
            lines_lm.append(f"{name} 17 28 28 28 22 34 18 40 28 40")
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"\xff\xd8 truncated")  # corrupt
    lines_id.append("999999.jpg 1")  # listed but missing on disk
    lines_part.append("999999.jpg 0")
    (root / "identity_CelebA.txt").write_text("\n".join(lines_id) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(lines_part) + "\n")
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (root / "list_landmarks_align_celeba.txt").write_text(f"{len(lines_lm)}\n{header}\n" + "\n".join(lines_lm) + "\n")
    return root


def celeba(root, tmp_path, **kw):
    report = str(tmp_path / "run" / "bad_files.txt")
    return small_datamodule(
        CelebADataModule, root, image_size=(32, 28), cache_dir=str(tmp_path / "cache"), bad_files_report=report, **kw
    )


def test_celeba_official_split_parses_and_reports_bad_files(tmp_path, capsys):
    dm = celeba(make_celeba(tmp_path / "celeba"), tmp_path, split="official")
    dm.setup()
    assert [dm.splits[s].num_identities for s in ("train", "val", "test")] == [4, 2, 2]
    assert len(dm.splits["train"].labels) == 4 * 4 - 1  # the corrupt one skipped (the missing one too)
    out = capsys.readouterr().out
    assert "skipped 2 image file(s): 2 unreadable or missing, 0 without a face" in out
    report = (tmp_path / "run" / "bad_files.txt").read_text()
    assert "000002.jpg" in report and "999999.jpg" in report


def test_celeba_official_split_that_leaks_names_the_identity(tmp_path):
    dm = celeba(make_celeba(tmp_path / "celeba", leak=True), tmp_path, split="official")
    with pytest.raises(ConfigError, match=r"not identity-disjoint.*1 identities.*1 \(train/val\).*split=identity"):
        dm.setup()


def test_celeba_identity_split_and_landmark_alignment(tmp_path):
    root = make_celeba(tmp_path / "celeba", identities=10)
    dm = celeba(root, tmp_path, split="identity", split_fractions=[0.6, 0.2, 0.2], align="landmarks")
    dm.setup()
    assert [dm.splits[s].num_identities for s in ("train", "val", "test")] == [6, 2, 2]
    assert dm.splits["train"].images.shape[1:] == (32, 28, 3)


def test_celeba_missing_annotation_names_path_and_tree(tmp_path):
    root = make_celeba(tmp_path / "celeba")
    (root / "identity_CelebA.txt").unlink()
    with pytest.raises(ConfigError, match=r"(?s)identity_CelebA\.txt is missing.*img_align_celeba/"):
        celeba(root, tmp_path).setup()


# -- K-Face ---------------------------------------------------------------------------------------------
def make_kface(root: Path, ids=("19062421", "19062512", "19070101", "19070202", "19070303", "19070404")) -> Path:
    base = root / "Middle_Resolution"
    for person in ids:
        for accessory in ("S001", "S002"):
            for light in ("L1", "L8"):
                for camera in ("C4", "C7", "C15"):
                    image = base / person / accessory / light / "E01" / f"{camera}.jpg"
                    save_jpeg(image, size=(60, 80))
                    meta = ["info"] * 7 + ["10\t12\t30\t40", "0\t0\t5\t5"]
                    image.with_suffix(".txt").write_text("\n".join(meta) + "\n")
    # one box file that does not parse, one corrupt image
    (base / ids[0] / "S001" / "L1" / "E01" / "C4.txt").write_text("no box here\n")
    (base / ids[1] / "S001" / "L1" / "E01" / "C7.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def kface(root, tmp_path, **kw):
    settings = {"image_size": (24, 20), "split_fractions": [0.5, 0.25, 0.25], "cache_dir": str(tmp_path / "cache")}
    return small_datamodule(KFaceDataModule, root, **{**settings, **kw})


def test_kface_parses_factors_filters_and_boxes(tmp_path, capsys):
    root = make_kface(tmp_path / "kface")
    dm = kface(root, tmp_path, lights="L1-L7", cameras=[4, 7])
    dm.setup()
    factors = [f for s in dm.splits.values() for f in s.factors]
    assert {f["lighting"] for f in factors} == {"L1"}
    assert {f["camera"] for f in factors} == {"C4", "C7"}
    assert {f["accessory"] for f in factors} == {"S001", "S002"}
    assert len(factors) == 6 * 2 * 2 - 1  # 6 ids x 2 accessories x 2 cameras, minus the corrupt image
    assert dm.notes["box_files_unparsed"] == 1 and dm.notes["bad_files"] == 1
    assert "1 box file(s) did not parse" in capsys.readouterr().out


def test_kface_box_formats():
    assert parse_selection("lights", "L1-L3") == {"L1", "L2", "L3"}
    assert parse_selection("accessories", [1, "S006"]) == {"S001", "S006"}
    with pytest.raises(ConfigError, match="outside L1-L30"):
        parse_selection("lights", "L31")


def test_kface_box_file_parsing(tmp_path):
    meta = tmp_path / "C1.txt"
    meta.write_text("\n".join(["x"] * 7 + ["5\t6\t10\t20"]) + "\n")
    assert read_box(meta) == (5, 6, 15, 26)
    meta.write_text("3 4 10 10\n")
    assert read_box(meta) == (3, 4, 13, 14)
    meta.write_text("garbage\n")
    assert read_box(meta) is None


def test_kface_wrong_layout_shows_the_tree(tmp_path):
    (tmp_path / "kface" / "not_an_id").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"(?s)no 8-digit ID folder.*S001/ \.\.\. S006/"):
        kface(tmp_path / "kface", tmp_path).setup()


# -- 10K US Adult Faces -----------------------------------------------------------------------------------
def make_us10k(root: Path, photos=12) -> Path:
    for i in range(photos):
        save_jpeg(root / "Face Images" / f"First{i}_Last{i}_{i}_oval.jpg", size=(50, 60))
    (root / "10k_attributes.csv").write_text("Filename,Age\n")
    return root


def test_us10k_self_supervised_views_and_needs_augmentation(tmp_path):
    root = make_us10k(tmp_path / "us10k")
    args = dict(
        root=str(root),
        image_size=(24, 20),
        batch_identities=2,
        batch_images_per_identity=2,
        split_fractions=[0.5, 0.25, 0.25],
    )
    with pytest.raises(ConfigError, match="set augment=basic or augment=randaug"):
        US10kDataModule(**args).setup()
    dm = US10kDataModule(augment=BasicAugment(), **args)
    dm.setup()
    test = dm.splits["test"]
    assert len(test.labels) == 2 * test.num_identities  # two views per photo
    assert not (test.images[0] == test.images[1]).all()  # the second view is augmented


def test_us10k_as_distractors_adds_impostor_identities(tmp_path):
    root = make_us10k(tmp_path / "us10k", photos=10)
    people = {"train_identities": 6, "val_identities": 3, "test_identities": 3, "images_per_identity": 3}
    distractors = US10kDistractors(root=str(root))
    dm = synthetic(tmp_path / "cache", **people, image_size=(24, 24), batch_identities=2, distractors=distractors)
    dm.setup()
    assert dm.splits["val"].num_identities == 3 + 5 and dm.splits["test"].num_identities == 3 + 5
    assert sum(f.get("distractor", False) for f in dm.splits["test"].factors) == 5


# -- shared behaviour -----------------------------------------------------------------------------------
def test_subsets_are_seeded_stable_and_nested():
    records = [ImageRecord(Path(f"p{i}/{j}.png"), f"p{i}") for i in range(300) for j in range(5)]

    def ids(rs):
        return {r.identity for r in rs}

    hundred = take_subset(records, max_identities=100)
    assert ids(hundred) == ids(take_subset(records, max_identities=100))
    assert ids(hundred) < ids(take_subset(records, max_identities=200))
    assert len(ids(take_subset(records, fraction=0.1))) == 30
    assert len(take_subset(records, max_images_per_identity=2)) == 600


def test_cache_is_reused_lossless_and_faster_than_decoding(tmp_path):
    root = make_kface(tmp_path / "kface")
    first = kface(root, tmp_path)
    start = time.perf_counter()
    first.setup()
    decode_s = time.perf_counter() - start
    caches = list((tmp_path / "cache").iterdir())
    assert len(caches) == 1 and (caches[0] / "manifest.json").exists()
    second = kface(root, tmp_path)
    start = time.perf_counter()
    second.setup()
    cached_s = time.perf_counter() - start
    for split in ("train", "val", "test"):
        assert (first.splits[split].images == second.splits[split].images).all()
        assert first.splits[split].factors == second.splits[split].factors
    assert cached_s < decode_s
    # other preprocessing settings get their own cache
    kface(root, tmp_path, image_size=(20, 16)).setup()
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_half_written_split_cache_is_not_trusted(tmp_path):
    root = make_kface(tmp_path / "kface")
    dm = kface(root, tmp_path)
    dm.setup()
    cache = next((tmp_path / "cache").iterdir())
    (cache / "manifest.json").unlink()  # as if killed before the manifest was written
    (cache / "train_images.npy").write_bytes(b"garbage")
    again = kface(root, tmp_path)
    again.setup()
    assert (again.splits["train"].images == dm.splits["train"].images).all()
    assert (cache / "manifest.json").exists()


@pytest.mark.parametrize("experiment", ["triplet", "siamese"])
@pytest.mark.parametrize("dataset", ["celeba", "kface"])
def test_every_loader_trains_with_both_experiments(make_cfg, tmp_path, dataset, experiment):
    root = make_celeba(tmp_path / "celeba") if dataset == "celeba" else make_kface(tmp_path / "kface")
    split = ["datamodule.split=official"] if dataset == "celeba" else ["datamodule.split_fractions=[0.5,0.25,0.25]"]
    cfg = make_cfg(
        f"experiment={experiment}",
        f"datamodule={dataset}",
        f"datamodule.root={root}",
        "datamodule.image_size=[24,20]",
        "datamodule.batch_identities=2",
        "datamodule.batch_images_per_identity=2",
        "debug=fast",
        *split,
        tiny=False,
    )
    summary = train(cfg)
    assert 0 <= summary["test_eer"] <= 1
    assert summary["data_bad_files"] >= 1  # each fixture holds a corrupt file
    if dataset == "kface":
        assert summary["data_box_files_unparsed"] == 1
