"""+experiment=finetune on real faces (12 ORL people through face=mtcnn): the controls do what they say (frozen blocks
and warm-up keep weights, BatchNorm in eval mode keeps its statistics, the backbone's learning rate is scaled), a
run broken on purpose keeps the pretrained net, and fine-tuning without pretrained weights is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metric.errors import ConfigError
from metric.model.checkpoint import CHECKPOINT_KEY, build_model, read_checkpoint
from metric.pipelines.fit import build
from metric.pipelines.train import train
from metric.scoring.embed import embed_images
from tests.conftest import ordered_folder, orl_subset, require_weights


@pytest.fixture(scope="module")
def orl_people(tmp_path_factory):
    return orl_subset(tmp_path_factory.mktemp("finetune_orl"), 12)


@pytest.fixture
def finetune_cfg(make_cfg, orl_people):
    require_weights("mobilefacenet", "mtcnn")

    def make(*overrides: str):
        return make_cfg(
            "experiment=finetune",
            *ordered_folder(orl_people, "[6,3,3]"),
            "datamodule.batch_identities=6",
            "datamodule.batch_images_per_identity=3",
            "trainer.enable_progress_bar=false",
            "matcher.target_far=0.01",
            *overrides,
            tiny=False,
        )

    return make


def backbone_state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.net.backbone.state_dict().items()}


def test_frozen_blocks_warmup_and_batchnorm_eval_keep_what_they_say(finetune_cfg):
    cfg = finetune_cfg(
        "finetune.freeze_blocks=2",
        "finetune.warmup_epochs=1",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=1",
        "loss=arcface",
        "~miner",
        "finetune.keep_pretrained=false",
    )
    datamodule, module, trainer = build(cfg)
    before = backbone_state(module)
    after_warmup = {}
    from pytorch_lightning.callbacks import Callback

    class AtEpochEnd(Callback):  # the backbone as it stands when the warm-up epoch ends
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 0:
                after_warmup.update(backbone_state(pl_module))

    trainer.callbacks.append(AtEpochEnd())
    trainer.fit(module, datamodule=datamodule)
    after = backbone_state(module)
    assert all(torch.equal(before[k], after_warmup[k]) for k in before)  # warm-up: the backbone never moved
    frozen = [k for k in before if k.startswith(("stem.", "blocks.0."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # the first 2 groups never train
    trained = [k for k in before if k.startswith("blocks.14.") and "running" not in k and "num_batches" not in k]
    assert any(not torch.equal(before[k], after[k]) for k in trained)  # the rest did, after warm-up
    statistics = [k for k in before if "running_" in k]
    assert all(torch.equal(before[k], after[k]) for k in statistics)  # batchnorm=eval: statistics kept
    groups = trainer.optimizers[0].param_groups
    assert groups[0]["initial_lr"] == pytest.approx(cfg.optimizer.lr * cfg.finetune.backbone_lr_scale)
    assert groups[1]["initial_lr"] == pytest.approx(cfg.optimizer.lr)
    assert sum(p.numel() for p in groups[1]["params"]) == 6 * 192  # the ArcFace centres of the 6 training people


def test_a_run_broken_on_purpose_keeps_the_pretrained_net(finetune_cfg):
    """A learning rate that wrecks the backbone: validation gets worse, so the best checkpoint is rewritten as the
    pretrained net, which then gives exactly the pretrained embeddings, and the summary says so."""
    import timm

    summary = train(
        finetune_cfg(
            "optimizer.lr=0.5", "finetune.backbone_lr_scale=1", "trainer.max_epochs=1", "+trainer.limit_train_batches=2"
        )
    )
    assert summary["finetune_kept"] == "pretrained"
    best = summary["finetune_val_eer_best"]  # None: the wrecked net gave no finite score at all
    assert best is None or best > summary["finetune_val_eer_pretrained"]
    checkpoint = read_checkpoint(summary["best_checkpoint"])
    assert checkpoint[CHECKPOINT_KEY]["finetune"]["kept"] == "pretrained"
    net, head = build_model(checkpoint)
    pretrained = timm.create_model("mobilefacenet", pretrained=True)
    images = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            pretrained.eval()(torch.from_numpy(images).permute(0, 3, 1, 2) / 127.5 - 1)
        )
    assert head is None and np.allclose(embed_images(net, images), expected.numpy(), atol=1e-6)
    assert summary["finetune_val_eer_pretrained"] < 0.2  # the pretrained net tells ORL people apart,
    assert summary["test_eer"] < 0.2  # and the final test ran on it, not on the wrecked one


def test_a_tie_keeps_the_pretrained_net(finetune_cfg):
    summary = train(
        finetune_cfg(
            "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "finetune.backbone_lr_scale=0", "optimizer.lr=0"
        )
    )
    # nothing trains (lr 0): the fine-tuned net ties the pretrained one, and a tie keeps the pretrained net
    assert summary["finetune_kept"] == "pretrained"
    assert summary["finetune_val_eer_best"] == pytest.approx(summary["finetune_val_eer_pretrained"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            [
                "model=embedding_net",
                "model.backbone=resnet10t",
                "finetune=default",
                "datamodule.image_size=[32,32]",
                "face=none",
            ],
            "finetune starts from pretrained weights, but model.backbone=resnet10t has none",
        ),
        (["experiment=finetune", "model.pretrained=false"], "finetune starts from pretrained weights"),
        (["experiment=finetune", "face=none"], "add face=mtcnn"),
        (
            ["experiment=finetune", "face=dlib"],
            r"face.margin=0.1 cuts another crop: set face.template=arcface face.margin=0.0",
        ),
        (["experiment=finetune", "datamodule.image_size=[64,64]"], r"datamodule.image_size=\[112,112\]"),
        (["experiment=finetune", "finetune.batchnorm=frozen"], "finetune.batchnorm='frozen' is not one of eval, train"),
    ],
)
def test_bad_finetune_settings_are_one_line(make_cfg, overrides, message):
    require_weights("mobilefacenet", "mtcnn")
    with pytest.raises(ConfigError, match=message):  # before any data is read
        build(make_cfg(*overrides, tiny=False))


def test_keep_pretrained_is_refused_with_a_trained_head(make_cfg):
    require_weights("mobilefacenet", "mtcnn")
    with pytest.raises(ConfigError, match="set finetune.keep_pretrained=false"):
        build(make_cfg("experiment=finetune", "module=pair", "loss=bce", "~miner", "matcher=logistic", tiny=False))


@pytest.mark.parametrize(
    "objective",
    [
        pytest.param(["loss=triplet_margin", "miner=semihard"], marks=pytest.mark.slow),
        pytest.param(["loss=multi_similarity", "miner=multi_similarity"], marks=pytest.mark.slow),
        ["loss=arcface", "~miner", "loss.init=imprint"],
        ["module=pair", "loss=bce", "~miner", "matcher=logistic", "finetune.keep_pretrained=false"],
    ],
    ids=["triplet", "multi_similarity", "arcface", "siamese"],
)
def test_every_objective_trains_mobilefacenet(finetune_cfg, objective):
    summary = train(finetune_cfg("debug=fast", *objective))
    assert 0.0 <= summary["test_eer"] <= 1.0


@pytest.mark.parametrize(
    "student",
    [["model.backbone=resnet10t", "model.embedding_dim=192"], ["model=mobilefacenet", "model.backbone=mobilefacenet"]],
    ids=["resnet10t", "mobilefacenet"],
)
def test_mobilefacenet_teaches_and_learns_by_distillation(make_cfg, orl_people, mobilefacenet_bundle, student):
    summary = train(
        make_cfg(
            "experiment=distill",
            f"teacher.ckpt={mobilefacenet_bundle}",
            *student,
            "face=mtcnn",
            *ordered_folder(orl_people, "[6,3,3]"),
            "datamodule.image_size=[112,112]",
            "datamodule.batch_identities=6",
            "datamodule.batch_images_per_identity=3",
            "debug=fast",
            tiny=False,
        )
    )
    assert summary["teacher_test_eer"] < 0.2  # the pretrained teacher tells the 3 test people apart
