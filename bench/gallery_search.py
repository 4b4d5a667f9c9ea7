"""1:N search over 1,000,000 random unit vectors of size 512: this project's search vs faiss.IndexFlatIP.

Side by side in one run: latency of a single query and of a batch of 64 (top-10) for faiss.IndexFlatIP, our
exact float32 search, the compact float16 and int8 modes, and FAISS IVF (and HNSW with --hnsw); recall@1 of
each against exact search; and each index's memory (ours: its arrays; FAISS: the resident memory it added)
against the stored vectors' size.
Run: python bench/gallery_search.py [--count 1000000] [--dim 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from metric.deploy.gallery.search import ExactIndex, FaissIndex


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def latency(search, queries: np.ndarray, repeats: int) -> float:
    search(queries)  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        search(queries)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hnsw", action="store_true", help="also build FAISS HNSW (slow to build on 2 cores)")
    args = parser.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.count, args.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    recall_probes = vectors[rng.choice(args.count, 1024, replace=False)]
    recall_probes = recall_probes + 0.02 * rng.standard_normal(recall_probes.shape, dtype=np.float32)
    probes = recall_probes[:64]
    stored_mib = vectors.nbytes / 2**20
    print(
        f"{args.count:,} x {args.dim} float32 = {stored_mib:.0f} MiB; torch threads {torch.get_num_threads()}, "
        f"faiss threads {faiss.omp_get_max_threads()}"
    )

    rows = []
    before = rss_mib()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(vectors)
    rows.append(("faiss.IndexFlatIP", lambda q: flat.search(q, 10), rss_mib() - before))
    for storage in ("float32", "float16", "int8"):
        gc.collect()
        index = ExactIndex(vectors.copy() if storage == "float32" else vectors, storage)  # own its memory
        rows.append((f"exact {storage}", lambda q, ix=index: ix.search(q, 10), index.nbytes / 2**20))
    for kind in ["ivf"] + (["hnsw"] if args.hnsw else []):
        for storage in ("float32", "int8"):
            gc.collect()
            before, start = rss_mib(), time.perf_counter()
            approx = FaissIndex(vectors, kind, storage)
            print(f"built faiss {kind} {storage} in {time.perf_counter() - start:.0f} s")
            rows.append((f"{kind} {storage}", lambda q, ix=approx: ix.search(q, 10), rss_mib() - before))

    exact = rows[1][1]
    truth = np.concatenate([exact(recall_probes[i : i + 64])[0][:, 0] for i in range(0, len(recall_probes), 64)])
    baseline = None
    print(
        f"{'search':26} {'1 query ms':>11} {'64 queries ms':>14} {'vs flat (64)':>13} {'recall@1':>9} "
        f"{'memory MiB':>11}"
        f"   (recall@1 over {len(recall_probes)} probes, against exact float32 search)"
    )
    for name, search, memory in rows:
        single = latency(search, probes[:1], args.repeats) * 1000
        batch = latency(search, probes, args.repeats) * 1000
        found = [search(recall_probes[i : i + 64]) for i in range(0, len(recall_probes), 64)]
        top1 = np.concatenate([(f[1] if name.startswith("faiss.Index") else f[0])[:, 0] for f in found])
        baseline = baseline or batch
        print(
            f"{name:26} {single:11.1f} {batch:14.1f} {baseline / batch:12.2f}x {(top1 == truth).mean():9.3f} "
            f"{memory:8.0f} ({memory / stored_mib:.2f}x)"
        )


if __name__ == "__main__":
    main()
