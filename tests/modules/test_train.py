"""Every config composes, every experiment survives fast_dev_run, and a short real run beats raw pixels."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from metric.baselines.classical import ClassicalBaseline
from metric.errors import ConfigError
from metric.metrics import verification as V
from metric.pipelines.fit import build
from metric.pipelines.train import train
from metric.scoring.pairs import pair_scores
from metric.train import accept_plus_overrides
from tests.conftest import CONF_DIR, TINY_LIVENESS, ordered_folder, orl_subset, require_weights

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(Path(CONF_DIR).iterdir())
    if group.is_dir()
    and group.name not in ("hydra", "experiment", "attack", "baseline")  # metric.attack's, raw_pixels' groups
    for option in sorted(group.glob("*.yaml"))
]


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes(group, option, make_cfg):
    within = ["experiment=distill"] if group == "teacher" else []  # the teacher group comes with distillation
    cfg = make_cfg(*within, f"{group}={option}", tiny=group != "datamodule")  # the tiny overrides are synthetic keys
    assert cfg is not None


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_plus_syntax(experiment):
    overrides = accept_plus_overrides([f"+experiment={experiment}"])
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name="train", overrides=overrides)
    assert cfg.trainer.max_epochs > 0


@pytest.mark.parametrize(
    "spelling, enabled, attack",
    [("adversarial=true", True, "fgsm"), ("adversarial=True", True, "fgsm"), ("adversarial=false", False, None)],
)
def test_adversarial_true_or_false_composes(spelling, enabled, attack):
    overrides = accept_plus_overrides([spelling])  # plain Hydra refuses a bool as a group option
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name="train", overrides=overrides)
    assert (cfg.get("adversarial") is not None) is enabled
    if attack:
        assert cfg.adversarial.attack == attack


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_survives_fast_dev_run(experiment, make_cfg, tmp_path, request):
    extra = experiment_overrides(experiment, make_cfg, tmp_path, request)
    summary = fast_dev_run(experiment, extra, make_cfg, tmp_path, request)
    assert 0.0 <= summary["test_eer"] <= 1.0


def experiment_overrides(
    experiment: str, make_cfg: Callable[..., DictConfig], tmp_path: Path, request: pytest.FixtureRequest
) -> list[str]:
    """What an experiment needs beyond its defaults to run here; each first refuses to start without it."""
    extra = []
    if experiment == "distill":  # a teacher with the same embedding size and preprocessing: the tiny triplet run
        extra = [f"teacher.ckpt={request.getfixturevalue('tiny_triplet_run')[1]['best_checkpoint']}"]
        with pytest.raises(ConfigError, match="add teacher.ckpt=<ckpt>"):
            build(make_cfg("experiment=distill"))
    if experiment == "transfer":  # starts from a pretrained file: a fresh resnet10t state dict stands in
        import timm

        weights = tmp_path / "pretrained.pth"
        torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), weights)
        extra = [f"pretrained_checkpoint={weights}"]
        with pytest.raises(ConfigError, match="add pretrained_checkpoint=<ckpt>"):
            build(make_cfg("experiment=transfer"))
    if experiment == "adapt":  # a head on a frozen embedder: the tiny checkpoint exported to ONNX stands in for dlib
        from tests.model.test_embedders import exported_onnx

        onnx = exported_onnx(request.getfixturevalue("tiny_triplet_run"), tmp_path / "model.onnx")
        extra = [
            "model=onnx",
            f"model.path={onnx}",
            "model.input_size=[32,32]",
            "face=none",
            f"adapt.cache_dir={tmp_path}",
        ]
    if experiment == "self_train":  # one round, the tiny triplet run as the teacher, most training labels hidden
        teacher = [
            "teacher=ckpt",
            "face=none",
            f"teacher.ckpt={request.getfixturevalue('tiny_triplet_run')[1]['best_checkpoint']}",
        ]
        with pytest.raises(ConfigError, match="unlabeled.root=<folder of images>"):
            train(make_cfg("experiment=self_train", *teacher))
        extra = [
            *teacher,
            "unlabeled.labelled_identities=8",
            "self_train.rounds=1",
            "self_train.min_cluster_size=2",
            "self_train.target_far=0.05",
        ]
    return extra


def fast_dev_run(
    experiment: str,
    extra: list[str],
    make_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> dict:
    """The experiment trained with debug=fast (liveness on the CelebA-Spoof fixture tree, finetune on 8 ORL people)."""
    if experiment == "liveness":  # live/spoof data, not identities: the CelebA-Spoof fixture tree
        summary = train(
            make_cfg(
                *TINY_LIVENESS, f"datamodule.root={request.getfixturevalue('spoof_tree')}", "debug=fast", tiny=False
            )
        )
    elif experiment == "finetune":  # pretrained MobileFaceNet on real faces: 8 ORL people through face=mtcnn
        require_weights("mobilefacenet", "mtcnn")
        people = orl_subset(tmp_path / "people", 8)
        summary = train(
            make_cfg(
                "experiment=finetune",
                "debug=fast",
                *ordered_folder(people, "[4,2,2]"),
                "datamodule.batch_identities=4",
                "datamodule.batch_images_per_identity=3",
                tiny=False,
            )
        )
    else:
        summary = train(make_cfg(f"experiment={experiment}", "debug=fast", *extra))
    return summary


def test_short_training_beats_raw_pixels(make_cfg, tmp_path):
    cfg = make_cfg(
        "experiment=triplet",
        "trainer.max_epochs=4",
        "trainer.enable_progress_bar=false",
        "datamodule.train_identities=96",
        "datamodule.val_identities=12",
        "datamodule.test_identities=24",
        "datamodule.images_per_identity=6",
        "datamodule.batch_identities=16",
        "model.backbone=resnet10t",
        tiny=True,
    )
    summary = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert json.loads((run_dir / "summary.json").read_text())["test_eer"] == summary["test_eer"]
    assert (run_dir / "csv" / "metrics.csv").exists()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 3  # the final epoch, whichever epoch was best
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(
        [Path(summary["best_checkpoint"]).name, "last.ckpt"]
    )

    dm = instantiate(cfg.datamodule)
    dm.setup()
    test = dm.splits["test"]
    raw_eer, _ = V.eer(V.roc(*pair_scores(ClassicalBaseline().embed(test.images), test.labels)))
    print(f"raw-pixel EER {raw_eer:.3f}, trained EER {summary['test_eer']:.3f}")
    assert summary["test_eer"] < raw_eer - 0.10


def test_wandb_logger_is_offline_by_default(make_cfg, monkeypatch):
    """No WANDB_MODE, no API key: the config alone keeps W&B offline, with no login prompt."""
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = make_cfg("experiment=triplet", "logger=wandb", "trainer.max_epochs=1", "trainer.enable_progress_bar=false")
    assert cfg.logger.wandb.mode == "offline"
    train(cfg)
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").exists()  # the CSV logger still runs
