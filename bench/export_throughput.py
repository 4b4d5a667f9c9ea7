"""CPU embedding throughput, images/s at batch 1 and 32: the PyTorch model vs ONNX Runtime float32 vs int8, and
with --teacher dlib, dlib's face-recognition ResNet (a distillation teacher) on the same input size.

Side by side in one run, alternating rounds, median of each; the model files' sizes are printed. With no --ckpt the
net is a fresh EmbeddingNet (--backbone, default resnet10t as the default experiment, at --size, 128-d): weights do
not change the speed. A phone-sized student against its dlib teacher:
    python bench/export_throughput.py --backbone mobilenetv3_small_100 --size 150 --teacher dlib
Run: python bench/export_throughput.py [--ckpt C] [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from metric.deploy.export import export_onnx, quantize_int8
from metric.model.nets import EmbeddingNet
from metric.scoring.load import load_for_eval


def images_per_second(run, batch: np.ndarray, seconds: float) -> float:
    run(batch)  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--backbone", default="resnet10t", help="the fresh net's timm backbone (without --ckpt)")
    parser.add_argument("--size", type=int, default=48, help="the fresh net's input side (without --ckpt)")
    parser.add_argument(
        "--teacher",
        choices=("none", "dlib"),
        default="none",
        help="dlib: also time dlib's ResNet (it reads 150x150 RGB; use --size 150)",
    )
    return parser.parse_args()


def net_and_teacher(args: argparse.Namespace) -> tuple[torch.nn.Module, int, int, int, object | None]:
    """The net timed (the checkpoint's, or a fresh EmbeddingNet), its input channels, height and width, and with
    --teacher dlib, dlib's ResNet (None without)."""
    if args.ckpt:
        loaded = load_for_eval(args.ckpt)
        net, channels, (height, width) = loaded.net, loaded.preprocess["channels"], loaded.preprocess["image_size"]
    else:
        net, channels, height, width = EmbeddingNet(args.backbone, 128), 3, args.size, args.size
    teacher = None
    if args.teacher == "dlib":
        from metric.model.embedders import DlibEmbedder

        teacher = DlibEmbedder()
        if (channels, height, width) != (3, 150, 150):
            raise SystemExit("--teacher dlib reads 3x150x150 images: give --size 150 (or a 150x150 RGB --ckpt)")
    return net, channels, height, width, teacher


def median_rates(
    runners: dict, rng: np.random.Generator, channels: int, height: int, width: int, args: argparse.Namespace
) -> dict[int, dict[str, float]]:
    """Per batch size (1, 32): each runner's median images/s over --rounds alternating rounds of --seconds."""
    results = {}
    for size in (1, 32):
        batch = rng.standard_normal((size, channels, height, width), dtype=np.float32)
        rates = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                rates[name].append(images_per_second(run, batch, args.seconds))
        results[size] = {name: float(np.median(r)) for name, r in rates.items()}
    return results


def print_table(runners: dict, sizes: dict[str, float], results: dict[int, dict[str, float]]) -> None:
    """One row per runner: its file size and images/s at batch 1 and 32, against PyTorch's."""
    base = {size: results[size]["pytorch float32"] for size in results}
    print(f"{'model':18} {'MB':>6} {'batch 1 img/s':>14} {'vs pytorch':>10} {'batch 32 img/s':>15} {'vs pytorch':>10}")
    for name in runners:
        print(
            f"{name:18} {sizes[name]:6.1f} {results[1][name]:14.1f} {results[1][name] / base[1]:9.2f}x "
            f"{results[32][name]:15.1f} {results[32][name] / base[32]:9.2f}x"
        )


def main() -> None:
    args = parse_args()
    net, channels, height, width, teacher = net_and_teacher(args)
    net.eval()
    threads = torch.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        export_onnx(net, torch.zeros(1, channels, height, width), fp32, opset=17)
        quantize_int8(fp32, int8, rng.integers(0, 256, (128, height, width, channels), dtype=np.uint8))
        sessions = {
            name: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
            for name, p in (("onnx float32", fp32), ("onnx int8", int8))
        }

        def torch_run(x):
            with torch.no_grad():
                net(torch.from_numpy(x))

        runners = {
            "pytorch float32": torch_run,
            **{name: (lambda x, s=s: s.run(None, {"images": x})) for name, s in sessions.items()},
        }
        sizes = {
            "pytorch float32": sum(p.numel() * 4 for p in net.parameters()) / 2**20,
            "onnx float32": fp32.stat().st_size / 2**20,
            "onnx int8": int8.stat().st_size / 2**20,
        }
        if teacher is not None:
            runners["dlib teacher"] = lambda x: teacher(torch.from_numpy(x).clamp(-1, 1))
            sizes["dlib teacher"] = teacher.path.stat().st_size / 2**20
        print(f"{threads} threads; {channels}x{height}x{width} input; median of {args.rounds} alternating rounds")
        results = median_rates(runners, rng, channels, height, width, args)
        print_table(runners, sizes, results)


if __name__ == "__main__":
    main()
