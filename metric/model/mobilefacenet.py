"""MobileFaceNet (Chen et al., 2018) in torch, registered as the timm backbone `mobilefacenet`, with its pretrained
weights read from the TensorFlow Lite file of the weight store (`python -m metric.weights fetch mobilefacenet`).

The layout is the one the file holds (the TensorFlow MobileFaceNet): a 3x3 stride-2 convolution, a depthwise
separable convolution, 15 inverted-residual bottlenecks, a 1x1 convolution to 512 channels, a global depthwise
7x7 convolution (GDC) and two linear 1x1 convolutions to the 192-d embedding. Padding reproduces TensorFlow's SAME
(asymmetric at stride 2), for the 112 x 112 input the net reads. BatchNorm was folded into the file's biases; here
every convolution is followed by a
BatchNorm holding that bias (mean 0, variance 1 - eps: the identity), so fine-tuning can keep BN frozen, or
`set_batchnorm_statistics` re-expresses each BN with measured statistics without changing the function.
PReLU is written in the file as relu(x) + a * (x - |x|); its slope is 2a.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from timm.models import adapt_input_conv, register_model
from torch import nn

from metric.errors import ConfigError

INPUT_SIZE = (112, 112)
EMBEDDING_DIM = 192
# the project feeds (pixel / 127.5 - 1); the file was trained on (pixel - 127.5) / 128
INPUT_SCALE = 127.5 / 128.0
BN_EPS = 1e-5
# (expansion, output channels, blocks, first stride) of the bottleneck stages, as the file holds them
STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
# what the pretrained weights need: the weight store's model, 112 x 112 RGB faces on the ArcFace template, tight
PRETRAINED_INPUT = {
    "weights": "mobilefacenet",
    "image_size": list(INPUT_SIZE),
    "channels": 3,
    "face": {"template": "arcface", "margin": 0.0},
}


class ConvUnit(nn.Module):
    """convolution (TensorFlow SAME or VALID padding) -> BatchNorm -> PReLU (or linear)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        depthwise: bool = False,
        act: bool = True,
        padding: str = "same",
    ):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding
        same = padding == "same" and kernel > 1
        # TensorFlow's SAME: symmetric at stride 1 (the convolution pads); at stride 2 on the even sizes this net
        # sees (112, 56, 28, 14) the k - 2 padding pixels go after, not before (a fixed pad, so exports stay static)
        self.pad = nn.ZeroPad2d((0, kernel - 2, 0, kernel - 2)) if same and stride == 2 else nn.Identity()
        symmetric = (kernel - 1) // 2 if same and stride == 1 else 0
        self.conv = nn.Conv2d(cin, cout, kernel, stride, symmetric, groups=cout if depthwise else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.PReLU(cout) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expansion (PReLU) -> 3x3 depthwise (PReLU) -> 1x1 linear projection; the input is added
    back when the shape allows it (stride 1, same width), through stochastic depth when drop_path > 0."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, drop_path: float = 0.0):
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvUnit(cin, hidden, 1)
        self.depthwise = ConvUnit(hidden, hidden, 3, stride, depthwise=True)
        self.project = ConvUnit(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + self.drop_path(out) if self.residual else out


class MobileFaceNet(nn.Module):
    """112 x 112 face (the project's [-1, 1] input) -> 192-d embedding (not normalised; EmbeddingNet normalises).
    timm's interface: forward_features (the 7 x 7 x 512 map), forward_head, num_features, group_matcher."""

    def __init__(self, in_chans: int = 3, num_classes: int = 0, drop_path_rate: float = 0.0):
        super().__init__()
        self.in_chans = in_chans
        self.num_features = EMBEDDING_DIM
        self.stem = nn.Sequential(
            ConvUnit(in_chans, 64, 3, 2), ConvUnit(64, 64, 3, depthwise=True), ConvUnit(64, 64, 1, act=False)
        )
        count = sum(n for _, _, n, _ in STAGES)
        rates = torch.linspace(0, drop_path_rate, count).tolist()
        blocks, cin = [], 64
        for expansion, cout, n, stride in STAGES:
            for i in range(n):
                blocks.append(Bottleneck(cin, cout, expansion, stride if i == 0 else 1, rates[len(blocks)]))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = ConvUnit(cin, 512, 1)
        self.gdc = ConvUnit(512, 512, 7, depthwise=True, act=False, padding="valid")
        self.linear = ConvUnit(512, 512, 1, act=False, padding="valid")
        self.embedding = ConvUnit(512, EMBEDDING_DIM, 1, act=False, padding="valid")
        self.classifier = nn.Linear(EMBEDDING_DIM, num_classes) if num_classes else nn.Identity()
        self.identity_batchnorm()

    def identity_batchnorm(self) -> None:
        """Every BatchNorm as the identity (mean 0, variance 1 - eps, scale 1, shift 0): the file's folded layout."""
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - BN_EPS)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.stem(images * INPUT_SCALE)))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if features.shape[-2:] != (7, 7):
            raise ConfigError(
                f"MobileFaceNet reads 112x112 faces (its global depthwise layer is 7x7); it was given "
                f"images that give a {tuple(features.shape[-2:])} map: set datamodule.image_size=[112,112]."
            )
        embedding = self.embedding(self.linear(self.gdc(features))).flatten(1)
        return embedding if pre_logits else self.classifier(embedding)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups, in order: the stem, each bottleneck (coarse: all of them), then the head."""
        return {"stem": r"^stem", "blocks": r"^blocks" if coarse else r"^blocks\.(\d+)"}

    def get_classifier(self) -> nn.Module:
        return self.classifier

    @torch.no_grad()
    def set_batchnorm_statistics(self, images: torch.Tensor) -> None:
        """Re-express every BatchNorm with the mean and variance its input has on `images` (scale and shift chosen so
        the function in eval mode is unchanged): then training-mode BN starts close to the pretrained function."""
        stats: dict[nn.BatchNorm2d, tuple[torch.Tensor, torch.Tensor]] = {}
        hooks = [
            m.register_forward_hook(
                lambda m, inp, out: stats.__setitem__(
                    m, (inp[0].mean((0, 2, 3)), inp[0].var((0, 2, 3), unbiased=False))
                )
            )
            for m in self.modules()
            if isinstance(m, nn.BatchNorm2d)
        ]
        was_training = self.training
        try:
            self.eval()(images)
        finally:
            for hook in hooks:
                hook.remove()
            self.train(was_training)
        for bn, (mean, var) in stats.items():
            old_scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            old_shift = bn.bias - bn.running_mean * old_scale
            std = torch.sqrt(var + bn.eps)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(old_scale * std)  # new(y) = w (y - mean) / std + b = old_scale y + old_shift
            bn.bias.copy_(old_shift + old_scale * mean)


def conv_units(net: MobileFaceNet) -> list[ConvUnit]:
    return [m for m in net.modules() if isinstance(m, ConvUnit)]


def load_tflite_weights(net: MobileFaceNet, path) -> None:
    """Copy the file's convolution weights, folded BatchNorm biases and PReLU slopes into `net`, layer by layer in
    execution order; any layer whose shape or settings differ stops with one line (not the file expected)."""
    from datamodules.faces.tflite_file import read_tflite_ops

    ops = read_tflite_ops(path)
    convs = [op for op in ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    slopes = [op.weights()[0] for op in ops if op.kind == "MUL" and op.weights()]
    units = conv_units(net)
    prelus = [u.act for u in units if isinstance(u.act, nn.PReLU)]
    if len(convs) != len(units) or len(slopes) != len(prelus):
        raise ConfigError(
            f"{path} holds {len(convs)} convolutions and {len(slopes)} PReLU slopes; the MobileFaceNet "
            f"port reads {len(units)} and {len(prelus)}: it is not the MobileFaceNet file expected."
        )
    net.identity_batchnorm()  # each BN then carries only the folded bias copied below
    with torch.no_grad():
        for op, unit in zip(convs, units):
            weight, bias = (torch.from_numpy(w) for w in op.weights())
            weight = weight.permute(3, 0, 1, 2) if op.kind == "DEPTHWISE_CONV_2D" else weight.permute(0, 3, 1, 2)
            same = op.options.get("padding") == unit.padding or unit.kernel == 1  # 1x1: padding is moot
            if weight.shape != unit.conv.weight.shape or op.options.get("stride", (1, 1))[0] != unit.stride or not same:
                raise ConfigError(
                    f"{path}: layer {op.outputs[0]!r} has weights {tuple(weight.shape)}, stride "
                    f"{op.options.get('stride')}, padding {op.options.get('padding')}; the port expects "
                    f"{tuple(unit.conv.weight.shape)}: it is not the MobileFaceNet file expected."
                )
            unit.conv.weight.copy_(weight)
            unit.bn.bias.copy_(bias)
        for slope, prelu in zip(slopes, prelus):
            prelu.weight.copy_(2.0 * torch.from_numpy(slope).reshape(prelu.weight.shape))


def pretrained_weights_path():
    """The verified MobileFaceNet.tflite of the weight store, or one line naming the fetch command."""
    from datamodules.faces.weight_store import model_files

    return model_files("mobilefacenet")["MobileFaceNet.tflite"]


@register_model
def mobilefacenet(
    pretrained: bool = False, in_chans: int = 3, num_classes: int = 0, drop_path_rate: float = 0.0, **kwargs
) -> MobileFaceNet:
    """timm entry point: `timm.create_model("mobilefacenet", pretrained=True)` reads the weight store, never a hub."""
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's create_model passes these along
        kwargs.pop(key, None)
    if kwargs:
        raise TypeError(f"mobilefacenet() got unexpected arguments {sorted(kwargs)}")
    net = MobileFaceNet(3 if pretrained else in_chans, num_classes, drop_path_rate)
    if pretrained:
        load_tflite_weights(net, pretrained_weights_path())
        if in_chans != 3:  # grey input: timm's rule (the RGB filters summed)
            first = net.stem[0].conv
            adapted = nn.Conv2d(in_chans, first.out_channels, first.kernel_size, first.stride, bias=False)
            adapted.weight.data = adapt_input_conv(in_chans, first.weight.data)
            net.stem[0].conv = adapted
            net.in_chans = in_chans
    return net
