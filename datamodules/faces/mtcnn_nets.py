"""MTCNN's three nets (Zhang et al., 2016) in torch, with the weights of the weight store's TensorFlow Lite files
(`python -m metric.weights fetch mtcnn`): PNet proposes face windows over an image pyramid, RNet refines them,
ONet gives the final box and five landmarks (eye centres, nose tip, mouth corners).

As in the original Caffe models (and their TensorFlow port), the nets read images transposed (width and height
swapped), pixels as (x - 127.5) / 128. Each net here takes the image the normal way round, NCHW in those units, and
transposes it itself; the outputs keep the original meaning (box offsets x1, y1, x2, y2; landmarks x1..x5, y1..y5).
Max pooling with TensorFlow's SAME padding is ceil-mode pooling. The nets run channels-last: on a CPU that makes
their small pooling layers about ten times faster, with the same outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metric.errors import ConfigError

PIXEL_MEAN, PIXEL_SCALE = 127.5, 1.0 / 128.0


def conv_prelu(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel), nn.PReLU(cout)]


def pool(kernel: int, same: bool) -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel, 2, ceil_mode=same)


class PNet(nn.Module):
    """Fully convolutional proposal net: (N, 3, H, W) -> face probability (N, H', W') and box offsets (N, 4, H', W'),
    one 12 x 12 window every 2 pixels."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*conv_prelu(3, 10, 3), pool(2, True), *conv_prelu(10, 16, 3), *conv_prelu(16, 32, 3))
        self.score = nn.Conv2d(32, 2, 1)
        self.box = nn.Conv2d(32, 4, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images.transpose(2, 3).contiguous(memory_format=torch.channels_last))
        probability = F.softmax(self.score(features), dim=1)[:, 1]
        return probability.transpose(1, 2), self.box(features).transpose(2, 3)


class _Refiner(nn.Module):
    """A fixed-size crop net: convolutions, then dense layers on the NHWC-flattened map (TensorFlow's order)."""

    def __init__(self, body: list[nn.Module], flat: int, hidden: int, outputs: tuple[int, ...]):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.dense = nn.Sequential(nn.Linear(flat, hidden), nn.PReLU(hidden))
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in outputs)

    def forward(self, crops: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(crops.transpose(2, 3).contiguous(memory_format=torch.channels_last))
        features = features.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as TensorFlow flattens
        hidden = self.dense(features)
        outputs = [head(hidden) for head in self.heads]
        outputs[0] = F.softmax(outputs[0], dim=1)[:, 1]
        return outputs


class RNet(_Refiner):
    """24 x 24 crops -> face probability (N,) and box offsets (N, 4)."""

    def __init__(self):
        super().__init__(
            [*conv_prelu(3, 28, 3), pool(3, True), *conv_prelu(28, 48, 3), pool(3, False), *conv_prelu(48, 64, 2)],
            576,
            128,
            (2, 4),
        )


class ONet(_Refiner):
    """48 x 48 crops -> face probability (N,), box offsets (N, 4) and landmarks (N, 10: x1..x5, y1..y5 in box units)."""

    def __init__(self):
        super().__init__(
            [
                *conv_prelu(3, 32, 3),
                pool(3, True),
                *conv_prelu(32, 64, 3),
                pool(3, False),
                *conv_prelu(64, 64, 3),
                pool(2, True),
                *conv_prelu(64, 128, 2),
            ],
            1152,
            256,
            (2, 4, 10),
        )


def load_net(net: nn.Module, path) -> nn.Module:
    """Copy the file's convolution and dense weights and PReLU slopes into `net` in execution order (a shape or
    pooling setting that differs stops with one line), and return it in eval mode."""
    from datamodules.faces.tflite_file import read_tflite_ops

    ops = read_tflite_ops(path)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prelus = [m for m in net.modules() if isinstance(m, nn.PReLU)]
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    weighted = [op for op in ops if op.kind in ("CONV_2D", "FULLY_CONNECTED")]
    slopes = [op.weights()[0] for op in ops if op.kind == "MUL" and op.weights()]
    pooling = [op for op in ops if op.kind == "MAX_POOL_2D"]
    if (len(weighted), len(slopes), len(pooling)) != (len(layers), len(prelus), len(pools)):
        raise ConfigError(
            f"{path} is not the MTCNN {type(net).__name__} file expected: it holds {len(weighted)} "
            f"weighted layers, {len(slopes)} PReLU slopes and {len(pooling)} poolings."
        )
    with torch.no_grad():
        for op, layer in zip(weighted, layers):
            weight, bias = (torch.from_numpy(w) for w in op.weights())
            if op.kind == "CONV_2D":
                weight = weight.permute(0, 3, 1, 2)
            if weight.shape != layer.weight.shape:
                raise ConfigError(
                    f"{path}: layer {op.outputs[0]!r} has weights {tuple(weight.shape)}, the port "
                    f"expects {tuple(layer.weight.shape)}: not the MTCNN file expected."
                )
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        for slope, prelu in zip(slopes, prelus):
            prelu.weight.copy_(torch.from_numpy(slope).reshape(prelu.weight.shape))
    for op, layer in zip(pooling, pools):
        if op.options["window"][0] != layer.kernel_size or layer.ceil_mode != (op.options["padding"] == "same"):
            raise ConfigError(f"{path}: pooling {op.outputs[0]!r} is {op.options}; not the MTCNN file expected.")
    return net.eval().to(memory_format=torch.channels_last)


def pretrained_nets() -> tuple[PNet, RNet, ONet]:
    """The three nets with the weight store's weights (one line naming the fetch command when they are absent)."""
    from datamodules.faces.weight_store import model_files

    files = model_files("mtcnn")
    return (
        load_net(PNet(), files["pnet.tflite"]),
        load_net(RNet(), files["rnet.tflite"]),
        load_net(ONet(), files["onet.tflite"]),
    )
