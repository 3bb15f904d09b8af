"""Benchmark: what a message costs, by payload size, on one node and between two nodes.

Two simulated nodes (ray.cluster_utils.Cluster: separate raylets and object stores on
this machine, talking over loopback). For float32 payloads of 1 KB, 1 MB and 100 MB:

* codec: msgpack encode + decode in one process (throughput);
* msgpack path: an actor encodes an envelope for the wire (`codec.encode_wire`: a uint8
  array from 100 KiB), Ray carries it and the receiver decodes it (what serket-ray does),
  end-to-end latency from the send call to the receiver's answer;
* object-reference path: the same array returned as a plain Ray object (Ray's own
  serialisation, zero-copy for numpy), for comparison.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import ray
from ray.cluster_utils import Cluster

from runtime import codec

SIZES = {"1 KB": 1_000, "1 MB": 1_000_000, "100 MB": 100_000_000}


@ray.remote(num_cpus=0)
class Endpoint:
    """Sends (creates) or receives (decodes) payloads; lives on one node."""

    def message(self, nbytes: int) -> bytes | np.ndarray:
        payload = np.ones(nbytes // 4, dtype=np.float32)
        return codec.encode_wire(codec.Envelope("sender", "receiver", "forward", 1, payload))

    def array(self, nbytes: int) -> np.ndarray:
        return np.ones(nbytes // 4, dtype=np.float32)

    def receive_message(self, message: bytes | np.ndarray) -> int:
        return codec.decode(message, receiver="receiver").payload.nbytes

    def receive_array(self, array: np.ndarray) -> int:
        return array.nbytes


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    action()  # warm-up
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def _codec_seconds(nbytes: int, repeats: int) -> float:
    payload = np.ones(nbytes // 4, dtype=np.float32)
    envelope = codec.Envelope("sender", "receiver", "forward", 1, payload)
    return _median_seconds(lambda: codec.decode(codec.encode(envelope)).payload.sum(), repeats)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def run() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"a": 1}})
    cluster.add_node(num_cpus=1, resources={"b": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="warning")
    try:
        sender = Endpoint.options(resources={"a": 0.1}).remote()
        receivers = {
            "same node": Endpoint.options(resources={"a": 0.1}).remote(),
            "other node": Endpoint.options(resources={"b": 0.1}).remote(),
        }
        ray.get([sender.array.remote(4), *(r.array.remote(4) for r in receivers.values())])
        print("end-to-end latency in ms (median; includes making the payload)")
        print(f"{'payload':>7}  {'codec MB/s':>10}  " + "  ".join(
            f"{where + ' ' + path:>22}" for where in receivers for path in ("msgpack", "object-ref")
        ))  # fmt: skip
        for label, nbytes in SIZES.items():
            repeats = 5 if nbytes >= 10**8 else 30
            codec_s = _codec_seconds(nbytes, repeats)
            cells = [f"{label:>7}", f"{nbytes / codec_s / 1e6:>10.0f}"]
            for receiver in receivers.values():
                via_msgpack = _median_seconds(
                    lambda r=receiver, n=nbytes: ray.get(
                        r.receive_message.remote(sender.message.remote(n))
                    ),
                    repeats,
                )
                via_ref = _median_seconds(
                    lambda r=receiver, n=nbytes: ray.get(
                        r.receive_array.remote(sender.array.remote(n))
                    ),
                    repeats,
                )
                cells += [f"{_ms(via_msgpack):>22}", f"{_ms(via_ref):>22}"]
            print("  ".join(cells), flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
