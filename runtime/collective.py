"""Collectives over a module's shards: a torch.distributed process group formed inside
the shard actors, which live across rounds.

Why torch.distributed: Ray Train forms such groups too (`ray/train/torch/config.py`),
but its trainers start fresh workers for every fit, while a module's shards keep their
elements from round to round; Ray's `ray.util.collective` needs pygloo or cupy, which
this project does not install. torch ships gloo, which reduces numpy-backed CPU tensors
between nodes.

The rendezvous avoids the known traps. Shard 0 opens a TCPStore on port 0, so the
operating system picks the port as it binds (no race between picking a free port and
binding it); every forming of the group (the first, and again after a shard was
restarted) opens a fresh store, so a re-formed group never meets the old one; and the
group's timeout is the module's update deadline, so a dead shard makes the others'
collectives fail by then instead of after torch's 30-minute default.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import numpy as np


def _timeout(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)


class GroupMember:
    """One shard's membership of its module's process group."""

    def __init__(self) -> None:
        self._store: Any = None  # shard 0 keeps its store alive while the group lives

    def open_store(self, host: str, world_size: int, timeout_s: float) -> int:
        """Shard 0: a fresh store on a port the system picks; returns that port."""
        from torch import distributed

        self.leave()
        self._store = distributed.TCPStore(
            host,
            0,
            world_size,
            is_master=True,
            timeout=_timeout(timeout_s),
            wait_for_workers=False,
        )
        return int(self._store.port)

    def join(
        self,
        host: str,
        port: int,
        rank: int,
        world_size: int,
        timeout_s: float,
        collective_timeout_s: float,
        cuda: bool = False,
    ) -> None:
        """Every shard (shard 0 after `open_store`): join the group through the store.
        timeout_s bounds the joining, collective_timeout_s each collective after it.
        cuda: the shards train on GPUs; CUDA tensors then go over NCCL (as Ray Train's
        groups on GPUs), numpy's over gloo still."""
        from torch import distributed

        if rank == 0:
            store = self._store
        else:
            self.leave()
            store = distributed.TCPStore(
                host, port, world_size, is_master=False, timeout=_timeout(timeout_s)
            )
        distributed.init_process_group(
            "cpu:gloo,cuda:nccl" if cuda else "gloo", store=store, rank=rank,
            world_size=world_size,
            timeout=_timeout(collective_timeout_s),
        )  # fmt: skip

    def leave(self) -> None:
        """Leave the group this process is in, if any (before it is formed again)."""
        from torch import distributed

        if distributed.is_initialized():
            distributed.destroy_process_group()
        self._store = None


class TorchCollective:
    """`runtime.module.Collective` over the process group this actor joined.

    Each call is one collective of the arrays concatenated in float64: one round trip
    however many arrays a module combines. `payload_bytes` counts what this shard put
    into collectives (the bytes on the wire are about twice that, in a ring).
    """

    def __init__(self) -> None:
        self.payload_bytes = 0

    def allreduce(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from torch import distributed

        flat, unflatten = _flattened(arrays)
        self.payload_bytes += flat.numel() * flat.element_size()
        distributed.all_reduce(flat)
        return unflatten(flat)

    def broadcast(self, arrays: Mapping[str, np.ndarray], root: int = 0) -> dict[str, np.ndarray]:
        from torch import distributed

        flat, unflatten = _flattened(arrays)
        self.payload_bytes += flat.numel() * flat.element_size()
        distributed.broadcast(flat, src=root)
        return unflatten(flat)

    def data_parallel(self, network: Any) -> Any:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        from torch.nn.parallel import DistributedDataParallel

        device = next(network.parameters()).device
        wrapped = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )

        # No annotations: torch checks a hook's by identity, and this module's are strings.
        def counted(state, bucket):  # type: ignore[no-untyped-def]
            """torch's own all-reduce of a bucket of gradients, its bytes counted."""
            self.payload_bytes += bucket.buffer().numel() * bucket.buffer().element_size()
            return default_hooks.allreduce_hook(state, bucket)

        wrapped.register_comm_hook(None, counted)
        return wrapped


def _flattened(arrays: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
    """The arrays as one float64 tensor, and the function that splits it back."""
    import torch

    values = {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}
    flat = torch.from_numpy(
        np.concatenate([v.reshape(-1) for v in values.values()]) if values else np.zeros(0)
    )

    def unflatten(reduced: Any) -> dict[str, np.ndarray]:
        result, offset, data = {}, 0, reduced.numpy()
        for name, value in values.items():
            result[name] = data[offset : offset + value.size].reshape(value.shape)
            offset += value.size
        return result

    return flat, unflatten
