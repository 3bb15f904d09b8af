"""`serket-ray bench-scale`: a sharded model at scale on a simulated two-node cluster.

Data: the deformed digit set of `make-digits` (784 float32 features per element), made
once per size under --data-dir and read as shard files by the actors. Models: PCA
features (18, the example user module) -> GMM (K 10), each as S shards, shard i of both
on one node (--model gmm); or the tutorial's VAE alone, trained data-parallel over S
shards (--model vae). Per size and shard count it prints the seconds per GMM update
(the slowest shard's) or per VAE epoch, peak RSS and private memory of the driver, the
coordinator and each shard actor (private against the bytes of the shard's share of its
input), and the bytes each shard put into collectives per update: the only bytes of an
update that cross nodes here (element-wise messages stay with the shard that made them).
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
from actors.vae import VAE
from launch import deformed_digits
from launch.bench_memory import PeakSampler
from launch.examples.pca_features import PCAFeatures

FEATURES = 18  # the tutorial's latent size: the GMM classifies 18-D rows
# Memory sampled twice a second: reading a large process's smaps more often slowed the
# shards' updates measurably (peaks of a large update last seconds).
SAMPLE_S = 0.5
CLASSES = 10
INPUT_FEATURES = {"pca": 784, "vae": 784, "gmm": FEATURES}  # per element, by module kind


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
    cluster: Cluster, folder: Path, elements: int, shards: int, updates: int, model: str,
    options: dict[str, Any], out: Path,
) -> dict[str, Any]:  # fmt: skip
    """One size and shard count, memory sampled: PCA once then `updates` GMM updates
    (model "gmm"), or `updates` VAE updates of options["epochs"] epochs (model "vae")."""
    session = srk.init(out, address=cluster.address, display="off")
    digits = srk.Observation(str(folder / "digits-*.npy"))
    try:
        if model == "vae":
            timed = VAE(FEATURES, itr=options["epochs"], shards=shards)
            timed.connect(digits)
            first: list[Any] = []
        else:
            pca = PCAFeatures(FEATURES, shards=shards)
            timed = GMM(CLASSES, algorithm=options["algorithm"], shards=shards,
                        category=str(folder / "labels-*.npy"))  # fmt: skip
            pca.connect(digits)
            timed.connect(pca)
            first = [pca]
        placed = session.placements()
        pids = {
            f"{p['module'].split('_', 1)[1]} shard {p.get('shard', 0)}": p["pid"] for p in placed
        }
        pids |= {"coordinator": session.status()["coordinator"]["pid"], "driver": os.getpid()}
        sampler = PeakSampler(pids, every_s=SAMPLE_S)
        sampler.start()
        for module in first:
            module.update()
        reports = [timed.update() for _ in range(updates)]
        sampler.done.set()
        sampler.join()
    finally:
        srk.shutdown()
    per = options["epochs"] if model == "vae" else 1  # seconds per epoch, or per update
    seconds = [r["seconds"] / per for r in reports]
    return {
        "model": model,
        "elements": elements,
        "shards": shards,
        "seconds": min(seconds),
        "all_seconds": seconds,
        "metrics": reports[-1]["metrics"],
        "collective_bytes": reports[-1].get("collective_bytes", 0),
        "peaks": sampler.peaks,
        "nodes": len({p["node_id"] for p in placed}),
    }


def _share_mb(name: str, elements: int, shards: int) -> float:
    """The bytes of a shard's share of its input: digits for the PCA and the VAE,
    features for the GMM."""
    return elements / shards * INPUT_FEATURES[name.split()[0]] * 4 / 2**20


def _print(result: dict[str, Any]) -> None:
    n, s = result["elements"], result["shards"]
    each = ", ".join(f"{x:.1f}" for x in result["all_seconds"])
    if result["model"] == "vae":
        what = "VAE epoch (the update's time / epochs, reading and encoding included)"
        score = f"loss {result['metrics']['loss']:.1f}"
    else:
        what = "GMM update (the slowest shard's)"
        score = f"acc {result['metrics'].get('acc', float('nan')):.3f}"
    print(f"\n{n:,} elements, S={s} ({result['nodes']} nodes): {what} "
          f"{result['seconds']:.1f} s (of {each}), {score}, collectives "
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
    model: str = "gmm",
    epochs: int = 2,
) -> list[dict[str, Any]]:
    """Prints each size's figures per shard count, and the speed-up; returns them.
    model: "gmm" (PCA -> GMM, the GMM timed) or "vae" (the VAE alone, `epochs` a round)."""
    folders = {n: digit_set(data_dir, n) for n in elements}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": node_cpus})
    cluster.add_node(num_cpus=node_cpus)
    cluster.wait_for_nodes()
    results = []
    try:
        for n in elements:
            for s in shards:
                options = {"algorithm": algorithm, "epochs": epochs}
                result = _one(cluster, folders[n], n, s, updates, model, options,
                              out / f"{model}-{n}-{s}")  # fmt: skip
                _print(result)
                results.append(result)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"\n{model.upper()} speed-up T1 / TS and efficiency T1 / (S x TS):")
    for n in elements:
        by_s = {r["shards"]: r["seconds"] for r in results if r["elements"] == n}
        if 1 in by_s:
            for s, seconds in sorted(by_s.items()):
                print(f"  {n:>10,}  S={s}: {by_s[1] / seconds:.2f}x, efficiency "
                      f"{by_s[1] / (s * seconds):.2f}")  # fmt: skip
    return results
