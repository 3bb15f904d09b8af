"""`serket-ray bench-scale`: a sharded model at scale on a simulated two-node cluster.

Data: the deformed digit set of `make-digits` (784 float32 features per element), made
once per size under --data-dir and read as shard files by the actors. Model:
PCA features (18, the example user module) -> GMM (K 10), each as S shards, shard i of
both on one node. Per size and shard count it prints the seconds per GMM update (the
slowest shard's), peak RSS and private memory of the driver, the coordinator and each
shard actor (private against the bytes of the shard's share of its input), and the
bytes each GMM shard put into collectives per update: the only bytes of a GMM update
that cross nodes here (its element-wise messages stay with the shard that made them).
Linux (/proc); timings are comparable only within one run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

import runtime as srk
from actors.gmm import GMM
from launch import deformed_digits
from launch.bench_memory import PeakSampler
from launch.examples.pca_features import PCAFeatures

FEATURES = 18  # the tutorial's latent size: the GMM classifies 18-D rows
# Memory sampled twice a second: reading a large process's smaps more often slowed the
# shards' updates measurably (peaks of a large update last seconds).
SAMPLE_S = 0.5
CLASSES = 10


def digit_set(data_dir: Path, elements: int) -> Path:
    """The deformed set of `elements` digits under data_dir, made if it is not there."""
    folder = data_dir / f"digits-{elements}"
    manifest = folder / deformed_digits.MANIFEST
    if manifest.exists() and json.loads(manifest.read_text())["elements"] == elements:
        return folder
    print(f"making {elements} deformed digits in {folder} (once)")
    deformed_digits.write(folder, elements, say=lambda _line: None)
    return folder


def _one(
    cluster: Cluster, folder: Path, elements: int, shards: int, updates: int, algorithm: str,
    out: Path,
) -> dict[str, Any]:  # fmt: skip
    """One size and shard count: PCA once, then `updates` GMM updates, memory sampled."""
    session = srk.init(out, address=cluster.address, display="off")
    try:
        pca = PCAFeatures(FEATURES, shards=shards)
        gmm = GMM(CLASSES, algorithm=algorithm, shards=shards,
                  category=str(folder / "labels-*.npy"))  # fmt: skip
        pca.connect(srk.Observation(str(folder / "digits-*.npy")))
        gmm.connect(pca)
        placed = session.placements()
        pids = {
            f"{p['module'].split('_', 1)[1]} shard {p.get('shard', 0)}": p["pid"] for p in placed
        }
        pids |= {"coordinator": session.status()["coordinator"]["pid"], "driver": os.getpid()}
        sampler = PeakSampler(pids, every_s=SAMPLE_S)
        sampler.start()
        pca.update()
        reports = [gmm.update() for _ in range(updates)]
        sampler.done.set()
        sampler.join()
    finally:
        srk.shutdown()
    seconds = [r["seconds"] for r in reports]
    return {
        "elements": elements,
        "shards": shards,
        "gmm_seconds": min(seconds),
        "gmm_all_seconds": seconds,
        "acc": reports[-1]["metrics"].get("acc"),
        "collective_bytes": reports[-1].get("collective_bytes", 0),
        "peaks": sampler.peaks,
        "nodes": len({p["node_id"] for p in placed}),
    }


def _share_mb(name: str, elements: int, shards: int) -> float:
    """The bytes of a shard's share of its input: digits for the PCA, features for the GMM."""
    features = 784 if name.startswith("pca") else FEATURES
    return elements / shards * features * 4 / 2**20


def _print(result: dict[str, Any]) -> None:
    n, s = result["elements"], result["shards"]
    each = ", ".join(f"{x:.1f}" for x in result["gmm_all_seconds"])
    print(f"\n{n:,} elements, S={s} ({result['nodes']} nodes): GMM update "
          f"{result['gmm_seconds']:.1f} s (of {each}), acc {result['acc']:.3f}, collectives "
          f"{result['collective_bytes'] / 1e3:.0f} kB per shard per update")  # fmt: skip
    header = ("process", "peak RSS MB", "private MB", "share MB", "private/share")
    print(f"  {header[0]:16}{header[1]:>12}{header[2]:>12}{header[3]:>10}{header[4]:>15}")
    for name, (rss, private) in result["peaks"].items():
        share = _share_mb(name, n, s) if "shard" in name else None
        ratio = f"{private / share:15.2f}" if share else f"{'':15}"
        share_text = f"{share:10.0f}" if share else f"{'':10}"
        print(f"  {name:16}{rss:12}{private:12}{share_text}{ratio}")


def run(
    elements: Sequence[int],
    shards: Sequence[int],
    data_dir: Path,
    out: Path,
    *,
    updates: int = 2,
    algorithm: str = "gibbs",
    node_cpus: int = 2,
) -> list[dict[str, Any]]:
    """Prints each size's figures per shard count, and the speed-up; returns them."""
    folders = {n: digit_set(data_dir, n) for n in elements}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": node_cpus})
    cluster.add_node(num_cpus=node_cpus)
    cluster.wait_for_nodes()
    results = []
    try:
        for n in elements:
            for s in shards:
                result = _one(cluster, folders[n], n, s, updates, algorithm, out / f"{n}-{s}")
                _print(result)
                results.append(result)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("\nGMM speed-up T1 / TS and efficiency T1 / (S x TS):")
    for n in elements:
        by_s = {r["shards"]: r["gmm_seconds"] for r in results if r["elements"] == n}
        if 1 in by_s:
            for s, seconds in sorted(by_s.items()):
                print(f"  {n:>10,}  S={s}: {by_s[1] / seconds:.2f}x, efficiency "
                      f"{by_s[1] / (s * seconds):.2f}")  # fmt: skip
    return results
