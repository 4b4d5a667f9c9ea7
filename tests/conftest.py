"""Shared test helpers: compose the training config with Hydra's compose API on tiny synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
REPO_ROOT = Path(__file__).resolve().parents[1]
ORL = REPO_ROOT.parent / "shared" / "data" / "att_faces"  # the real faces beside the project, never copied in

os.environ.setdefault("WANDB_SILENT", "true")

# A synthetic split small enough to train on in seconds, large enough for P x K = 8 x 3.
TINY_DATA = [
    "datamodule.train_identities=24",
    "datamodule.val_identities=6",
    "datamodule.test_identities=6",
    "datamodule.images_per_identity=5",
    "datamodule.image_size=[32,32]",
    "datamodule.batch_identities=8",
    "datamodule.batch_images_per_identity=3",
]

# one epoch of two training batches, scored at a FAR the tiny validation split supports
TWO_BATCHES = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "+trainer.limit_train_batches=2",
    "matcher.target_far=0.1",
]
# a liveness run on a tiny attack set
TINY_LIVENESS = [
    "experiment=liveness",
    "datamodule.image_size=[32,32]",
    "datamodule.val_subjects=3",
    "datamodule.batch_size=16",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One synthetic-cache folder for the whole session, so each tiny dataset is rendered once."""
    return tmp_path_factory.mktemp("data")


def compose_config(name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """Compose conf/<name>.yaml as `python -m metric.<name>` would, writing into output_dir, caching in data_dir."""
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            config_name=name, overrides=[f"paths.output_dir={output_dir}", f"paths.data_dir={data_dir}", *overrides]
        )


def ordered_folder(root: Path, counts: str = "[4,4,4]") -> list[str]:
    """The overrides for a folder of identities split in natural order: `counts` train, validation, test."""
    return [
        "datamodule=folder",
        f"datamodule.root={root}",
        "datamodule.split=ordered",
        f"datamodule.split_counts={counts}",
    ]


def compose_train(overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """Compose conf/train.yaml as `python -m metric.train` would, writing into output_dir."""
    return compose_config("train", overrides, output_dir, data_dir)


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_train([*(TINY_DATA if tiny else []), *overrides], tmp_path / "run", data_dir)

    return make


@pytest.fixture(scope="session")
def siamese_default_run(tmp_path_factory, data_dir):
    """One short siamese run (3 epochs) on the full default dataset, shared by the tests that need a trained head."""
    from metric.pipelines.train import train

    cfg = compose_train(
        ["experiment=siamese", "trainer.max_epochs=3", "trainer.enable_progress_bar=false"],
        tmp_path_factory.mktemp("siamese_run"),
        data_dir,
    )
    return cfg, train(cfg)


@pytest.fixture(scope="session")
def tiny_triplet_run(tmp_path_factory, data_dir):
    """A 2-epoch triplet run on the tiny synthetic split: a real checkpoint for evaluation tests."""
    from metric.pipelines.train import train

    cfg = compose_train(
        [
            *TINY_DATA,
            "experiment=triplet",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
            "matcher.target_far=0.01",
        ],
        tmp_path_factory.mktemp("triplet_run"),
        data_dir,
    )
    return cfg, train(cfg)


def compose_evaluate(overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    return compose_config("evaluate", overrides, output_dir, data_dir)


@pytest.fixture(scope="session")
def spoof_tree(tmp_path_factory) -> Path:
    """A tiny CelebA-Spoof tree in the official layout (tests/datamodules/spoof_fixtures.py)."""
    from tests.datamodules.spoof_fixtures import build_celeba_spoof

    root = tmp_path_factory.mktemp("celeba_spoof")
    build_celeba_spoof(root, train_subjects=10, test_subjects=4)
    return root


@pytest.fixture(scope="session")
def tiny_liveness_run(tmp_path_factory, data_dir, spoof_tree):
    """A 3-epoch liveness run on the fixture tree: a real liveness checkpoint with its calibrated threshold."""
    from metric.pipelines.train import train

    cfg = compose_train(
        [*TINY_LIVENESS, f"datamodule.root={spoof_tree}", "trainer.max_epochs=3"],
        tmp_path_factory.mktemp("liveness_run"),
        data_dir,
    )
    return cfg, train(cfg)


@pytest.fixture(scope="session")
def dlib_bundle(tmp_path_factory, data_dir) -> Path:
    """dlib's pretrained face model calibrated on 8 ORL identities (a bundle): a model that tells ORL people apart,
    for the service and browser tests. Skips when ORL or the `.[faces]` extra is missing."""
    pytest.importorskip("dlib")
    if not ORL.is_dir():
        pytest.skip("ORL faces (../shared/data/att_faces) are not present")
    people = [*ordered_folder(ORL, "[4,2,2]"), "datamodule.max_identities=8"]
    return calibrated_bundle(
        tmp_path_factory.mktemp("dlib_bundle"), "dlib", ["model=dlib", "face=dlib", *people], data_dir
    )


def calibrated_bundle(folder: Path, name: str, overrides: list[str], data_dir: Path) -> Path:
    """A pretrained embedder calibrated by metric.calibrate at FAR 0.01 (or the lowest its pairs support) into
    <folder>/<name>.ckpt: a bundle."""
    from metric.pipelines.calibrate import calibrate_checkpoint

    bundle = folder / f"{name}.ckpt"
    settings = [*overrides, f"ckpt={bundle}", "matcher.target_far=0.01", "allow_unsupported_far=true"]
    calibrate_checkpoint(compose_config("calibrate", settings, folder, data_dir))
    return bundle


LFW = REPO_ROOT.parent / "shared" / "data" / "lfw"  # the complete LFW beside the project, never copied in


def require_weights(*models: str) -> None:
    """Skip, naming the fetch command, when a model's weights are not in the weight store; under CI=true (where
    .ci/run fetched them) their absence is a failure."""
    from datamodules.faces.weight_store import fetch_command, models_present

    missing = [m for m in models if not models_present(m)]
    if missing:
        message = f"weights missing for {', '.join(missing)}: run `{fetch_command(' '.join(missing))}`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def orl_subset(root: Path, identities: int, images: int = 10) -> Path:
    """The first `identities` ORL people (s1, s2, ...) with `images` photos each, as links in a folder tree."""
    if not ORL.is_dir():
        pytest.skip("ORL faces (../shared/data/att_faces) are not present")
    for i in range(1, identities + 1):
        (root / f"s{i}").mkdir(parents=True, exist_ok=True)
        for j in range(1, images + 1):
            link = root / f"s{i}" / f"{j}.pgm"
            if not link.exists():
                link.symlink_to(ORL / f"s{i}" / f"{j}.pgm")
    return root


@pytest.fixture(scope="session")
def mobilefacenet_bundle(tmp_path_factory, data_dir) -> Path:
    """MobileFaceNet, pretrained, fed through face=mtcnn, calibrated on 12 ORL identities: a bundle (weights
    included) for the attack, export and gallery tests."""
    require_weights("mobilefacenet", "mtcnn")
    folder = tmp_path_factory.mktemp("mobilefacenet_bundle")
    people = orl_subset(folder / "people", 12)
    return calibrated_bundle(
        folder, "mobilefacenet", ["model=mobilefacenet", "face=mtcnn", *ordered_folder(people)], data_dir
    )
