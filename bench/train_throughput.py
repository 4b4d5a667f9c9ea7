"""Training images/second: the Lightning module driven by the Trainer vs a plain PyTorch loop, side by side.

Both loops use the same backbone, loss, miner, optimizer, P x K batches and in-memory synthetic data,
and run in alternating rounds (Lightning, plain, Lightning, plain, ...) so machine noise hits both.
Run: python bench/train_throughput.py [--steps 30] [--rounds 3] [--backbone mobilefacenet --size 112]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_metric_learning import losses, miners

from datamodules.sources.synthetic import SyntheticFacesDataModule
from metric.model.nets import EmbeddingNet
from metric.modules.metric_loss import MetricLossModule

BACKBONE = {"name": "resnet18"}  # set from --backbone


def make_net(backbone: str) -> EmbeddingNet:
    """The backbone with a 128-d projection; mobilefacenet as it is fine-tuned (its own 192-d output, no projection)."""
    if backbone == "mobilefacenet":
        return EmbeddingNet(backbone, embedding_dim=192, in_chans=3, projection="none")
    return EmbeddingNet(backbone, embedding_dim=128, in_chans=3)


def make_parts(seed: int):
    torch.manual_seed(seed)
    net = make_net(BACKBONE["name"])
    loss = losses.TripletMarginLoss(margin=0.2)
    miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    optimizer = partial(torch.optim.AdamW, lr=1e-3, weight_decay=5e-4)
    return net, loss, miner, optimizer


class StepTimer(pl.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter())


def lightning_loop(datamodule, steps: int, warmup: int) -> float:
    net, loss, miner, optimizer = make_parts(0)
    module = MetricLossModule(net, loss=loss, miner=miner, optimizer=optimizer)
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    batch = datamodule.batch_identities * datamodule.batch_images_per_identity
    return batch * steps / (timer.times[warmup + steps - 1] - timer.times[warmup - 1])


def epochs_of_batches(loader, count: int):
    """`count` batches, starting a new epoch (as the Trainer does) whenever the loader runs out."""
    epoch = 0
    while True:
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            yield batch
            count -= 1
            if count == 0:
                return
        epoch += 1


def plain_loop(datamodule, steps: int, warmup: int) -> float:
    net, loss_fn, miner, optimizer_factory = make_parts(0)
    optimizer = optimizer_factory(params=net.parameters())
    net.train()
    times = []
    for images, labels in epochs_of_batches(datamodule.train_dataloader(), warmup + steps):
        embeddings = net(images)
        loss = loss_fn(embeddings, labels, miner(embeddings, labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter())
    batch = datamodule.batch_identities * datamodule.batch_images_per_identity
    return batch * steps / (times[warmup + steps - 1] - times[warmup - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backbone", default="resnet18", help="a timm backbone, or mobilefacenet")
    parser.add_argument("--size", type=int, default=48, help="image side in pixels (mobilefacenet reads 112)")
    args = parser.parse_args()
    BACKBONE["name"] = args.backbone
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as cache:
        datamodule = SyntheticFacesDataModule(
            cache_dir=cache,
            train_identities=1000,
            val_identities=4,
            test_identities=4,
            batch_identities=16,
            batch_images_per_identity=4,
            image_size=[args.size, args.size],
        )
        datamodule.setup()
        results: dict[str, list[float]] = {"lightning": [], "plain": []}
        for round_index in range(args.rounds):
            results["lightning"].append(lightning_loop(datamodule, args.steps, args.warmup))
            results["plain"].append(plain_loop(datamodule, args.steps, args.warmup))
            print(
                f"round {round_index + 1}: lightning {results['lightning'][-1]:.1f} img/s, "
                f"plain {results['plain'][-1]:.1f} img/s"
            )
    lightning, plain = np.median(results["lightning"]), np.median(results["plain"])
    print(
        f"median images/s  lightning {lightning:.1f}  plain {plain:.1f}  ratio lightning/plain {lightning / plain:.3f}"
    )
    height, width = datamodule.image_size
    print(
        f"({args.backbone}, {height}x{width} RGB, P x K = {datamodule.batch_identities} x "
        f"{datamodule.batch_images_per_identity}, semihard triplets, AdamW; torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
