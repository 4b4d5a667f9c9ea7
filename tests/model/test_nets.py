"""EmbeddingNet: timm backbone + projection + L2 norm; local weights load; pretrained fails fast offline."""

import time

import pytest
import torch
from safetensors.torch import save_file

from metric.errors import ConfigError
from metric.model.nets import EmbeddingNet


@pytest.mark.parametrize("backbone,in_chans", [("resnet18", 3), ("mobilenetv2_100", 1)])
def test_embeddings_are_normalised_and_sized(backbone, in_chans):
    net = EmbeddingNet(backbone, embedding_dim=32, in_chans=in_chans).eval()
    out = net(torch.randn(2, in_chans, 48, 40))
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_load_into_backbone(tmp_path, suffix):
    source = EmbeddingNet("resnet18", 16)
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in source.backbone.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": state}, path)
    loaded = EmbeddingNet("resnet18", 16, weights=str(path))
    for key, value in source.backbone.state_dict().items():
        torch.testing.assert_close(loaded.backbone.state_dict()[key], value)


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"foo.weight": torch.zeros(3)}, str(path))
    with pytest.raises(ConfigError, match="no tensor that fits the backbone"):
        EmbeddingNet("resnet18", 16, weights=str(path))


def test_pretrained_fails_within_seconds_naming_weights_option():
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"model\.weights=<file>"):
        EmbeddingNet("resnet18", pretrained=True)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_100", "mobilenetv2_100"])
def test_phone_sized_backbones_embed(backbone):
    """MobileNetV3 pools into a head stage wider than num_features: the projection must take the head's width."""
    net = EmbeddingNet(backbone, 64)
    out = net(torch.zeros(2, 3, 48, 48))
    assert out.shape == (2, 64) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_flatten_head_keeps_the_feature_map_layout_and_rebuilds_from_its_spec():
    net = EmbeddingNet("resnet10t", 16, in_chans=1, pool="flatten", input_size=[64, 48], dropout=0.2).eval()
    # resnet10t reduces 64x48 by 32 to a 2x2 map of 512 channels: the projection sees all 2048 values
    assert net.projection.in_features == 512 * 2 * 2
    x = torch.rand(3, 1, 64, 48)
    out = net(x)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    rebuilt = EmbeddingNet(**net.spec()).eval()
    rebuilt.load_state_dict(net.state_dict())
    assert torch.allclose(rebuilt(x), out)
    # the default (avg) spec is unchanged, so checkpoints written before pool/dropout existed still rebuild
    assert EmbeddingNet("resnet10t", 16).spec() == {"backbone": "resnet10t", "embedding_dim": 16, "in_chans": 3}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pool": "max"}, "model.pool='max'"),
        ({"pool": "flatten"}, "needs the input size"),
        ({"dropout": 1.0}, "model.dropout=1.0"),
    ],
)
def test_bad_head_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EmbeddingNet("resnet10t", 16, **kwargs)


def test_checkpoints_of_flatten_nets_say_format_2_and_rebuild():
    from pytorch_metric_learning import losses

    from metric.model.checkpoint import build_model
    from metric.modules.metric_loss import MetricLossModule

    def saved(net):
        module = MetricLossModule(net, loss=losses.TripletMarginLoss(), optimizer=torch.optim.AdamW)
        checkpoint = {"state_dict": module.state_dict()}
        module.on_save_checkpoint(checkpoint)
        return checkpoint

    old_style = saved(EmbeddingNet("resnet10t", 8))
    assert old_style["metric_faces"]["format"] == 1  # readable by versions that predate pool/dropout
    flat = saved(EmbeddingNet("resnet10t", 8, in_chans=1, pool="flatten", input_size=[64, 64]))
    assert flat["metric_faces"]["format"] == 2
    net, _ = build_model(flat)
    assert net.pool == "flatten" and net.projection.in_features == 512 * 2 * 2
