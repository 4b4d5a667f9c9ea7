"""Classification losses (ArcFace, SubCenterArcFace, CosFace): identity labels map to classes, the class centres
train with the net, and a short run with loss=arcface completes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metric.errors import ConfigError
from metric.losses.class_losses import IdentityClassLoss


@pytest.mark.parametrize("kind", ["arcface", "subcenter_arcface", "cosface"])
def test_sparse_identity_labels_train_their_own_class_centres(kind):
    torch.manual_seed(0)
    loss = IdentityClassLoss(
        kind, train_labels=np.array([40, 7, 7, 1000, 40]), embedding_size=8, margin=0.35 if kind == "cosface" else 28.6
    )
    assert loss.num_classes == 3
    embeddings = F.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    labels = torch.tensor([7, 7, 40, 40, 1000, 1000])
    value = loss(embeddings, labels)
    value.backward()
    assert torch.isfinite(value) and embeddings.grad.abs().sum() > 0
    (centres,) = list(loss.parameters())
    assert centres.grad is not None and centres.grad.abs().sum() > 0
    # one optimiser step on the centres lowers the loss on the same batch
    with torch.no_grad():
        centres -= 0.5 * centres.grad
    assert loss(embeddings.detach(), labels) < value.detach()


def test_identities_outside_training_are_refused():
    loss = IdentityClassLoss("arcface", train_labels=np.array([0, 1, 2]), embedding_size=4)
    with pytest.raises(ValueError, match=r"identities \[-1, 3, 99\] are not among the 3"):
        loss(F.normalize(torch.randn(4, 4), dim=1), torch.tensor([0, 3, 99, -1]))


def test_each_kind_gets_its_own_default_margin():
    arcface = IdentityClassLoss("arcface", train_labels=np.arange(3), embedding_size=4)
    cosface = IdentityClassLoss("cosface", train_labels=np.arange(3), embedding_size=4)
    assert arcface.loss.margin == pytest.approx(np.radians(28.6)) and cosface.loss.margin == pytest.approx(0.35)
    with pytest.raises(ConfigError, match="cosine offset in \\[0, 1\\)"):
        IdentityClassLoss("cosface", train_labels=np.arange(3), embedding_size=4, margin=28.6)


def test_bad_classification_loss_settings_are_clear_errors(make_cfg):
    with pytest.raises(ConfigError, match="loss.kind='sphereface'"):
        IdentityClassLoss("sphereface", train_labels=np.arange(4), embedding_size=4)
    with pytest.raises(ConfigError, match="at least 2 training identities"):
        IdentityClassLoss("arcface", train_labels=np.array([3, 3]), embedding_size=4)
    from metric.pipelines.train import train

    with pytest.raises(ConfigError, match="~miner"):
        train(make_cfg("loss=arcface", "trainer.max_epochs=1"))
    with pytest.raises(ConfigError, match="not the pair objective of module=pair"):
        train(make_cfg("experiment=siamese", "loss=arcface", "trainer.max_epochs=1"))


def test_arcface_run_trains_the_centres_with_the_net(make_cfg, tmp_path):
    from metric.model.checkpoint import read_checkpoint
    from metric.pipelines.train import train

    cfg = make_cfg(
        "loss=subcenter_arcface",
        "~miner",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "model.backbone=resnet10t",
        "matcher.target_far=0.01",
    )
    summary = train(cfg)
    assert 0 <= summary["test_eer"] <= 1
    state = read_checkpoint(summary["best_checkpoint"])["state_dict"]
    centres = [key for key in state if key.startswith("loss_fn.")]
    # embedding size x (3 sub-centres x 24 training identities)
    assert centres and state[centres[0]].shape == (cfg.model.embedding_dim, 3 * 24)


@pytest.mark.parametrize("kind", ["arcface", "subcenter_arcface", "cosface"])
def test_imprinting_puts_each_centre_on_its_identity_mean(kind):
    """loss.init=imprint: every centre (every sub-centre) is the direction of its identity's mean embedding, so each
    embedding is nearest its own identity's centre from the first step."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([7, 7, 3, 3, 11, 11])
    directions = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator), dim=1)
    embeddings = directions[torch.tensor([1, 1, 0, 0, 2, 2])] + 0.05 * torch.randn(6, 16, generator=generator)
    loss = IdentityClassLoss(kind, labels.numpy(), 16, init="imprint")
    before = loss(embeddings, labels).item()
    loss.imprint(embeddings, labels)
    centres = torch.nn.functional.normalize(loss.loss.W.T, dim=1)  # (classes x sub-centres, 16)
    per_class = centres.shape[0] // 3
    nearest = (torch.nn.functional.normalize(embeddings, dim=1) @ centres.T).argmax(1) // per_class
    assert nearest.tolist() == [1, 1, 0, 0, 2, 2]  # identities sorted: 3, 7, 11
    assert loss(embeddings, labels).item() < before
    with pytest.raises(ConfigError, match="loss.init='means' is not one of random, imprint"):
        IdentityClassLoss(kind, labels.numpy(), 16, init="means")
