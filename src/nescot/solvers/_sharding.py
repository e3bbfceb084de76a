"""Data-parallel training over several devices (and hosts) with ``jax.sharding``.

One mesh axis, ``"batch"``, spans every device (``jax.devices()``: all processes' devices after
``jax.distributed.initialize``). Parameters, optimiser state and in-memory training sets are
replicated; each step's batch is split along its cells. The mini-batch coupling is solved on the
*whole* batch: XLA partitions the cost matrix by rows and all-reduces the Sinkhorn marginals, so the
estimator (and the loss curve) is the one of a single device with the same batch size. Solving a
coupling per device shard instead would give a block-diagonal plan of ``n_devices`` smaller OT
problems, a noisier, more biased estimate of the entropic plan that changes with the device count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._settings import logger

AXIS = "batch"


def data_mesh(devices: int | Sequence[jax.Device] | None, batch_size: int) -> Mesh | None:
    """Build a 1-D mesh over the devices to train on, or return ``None`` for one device.

    Parameters
    ----------
    devices
        ``None``: all devices if the batch divides evenly among them (else one device, with a warning);
        an int: the first that many devices; or a list of devices.
    batch_size
        Cells per batch; must be a multiple of the device count.
    """
    auto = devices is None
    if auto:
        chosen = jax.devices()
    elif isinstance(devices, int | np.integer):
        if not 1 <= int(devices) <= jax.device_count():
            raise ValueError(f"`devices` must be in [1, {jax.device_count()}], got {devices}.")
        chosen = jax.devices()[: int(devices)]
    else:
        chosen = list(devices)
    if len(chosen) <= 1:
        return None
    if batch_size % len(chosen):
        if auto and jax.process_count() == 1:
            logger.warning(
                "batch_size %d is not a multiple of the %d devices; training on one device.", batch_size, len(chosen)
            )
            return None
        raise ValueError(f"`batch_size` ({batch_size}) must be a multiple of the number of devices ({len(chosen)}).")
    return Mesh(np.asarray(chosen), (AXIS,))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Place every leaf of ``tree`` (identical on every process) on all devices of ``mesh``."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, P())

    def put(leaf):
        leaf = np.asarray(leaf)
        return jax.make_array_from_callback(leaf.shape, sharding, lambda index: leaf[index])

    return jax.tree.map(put, tree)


def constrain_batch(batch: Any, mesh: Mesh | None, axis: int = 0) -> Any:
    """Inside ``jit``: split every leaf of ``batch`` along its cell axis ``axis`` over the mesh."""
    if mesh is None:
        return batch
    spec = NamedSharding(mesh, P(*([None] * axis), AXIS))
    # leaves without a cell axis (a batch's task index) stay replicated
    return jax.tree.map(lambda b: b if jnp.ndim(b) <= axis else jax.lax.with_sharding_constraint(b, spec), batch)


def feed_placement(mesh: Mesh | None, batch_size: int) -> tuple[Callable[[np.ndarray, tuple[int, ...]], Any], slice]:
    """How a host feed ships ``(chunk, batch, d)`` arrays and which batch positions this process reads.

    Returns ``put(local_array, global_shape)`` and the slice of batch positions held by this process's
    devices (all of them with one process).
    """
    if mesh is None:
        return (lambda a, shape: jax.device_put(a)), slice(None)
    sharding = NamedSharding(mesh, P(None, AXIS))
    index_map = sharding.addressable_devices_indices_map((1, batch_size, 1))
    starts = sorted(idx[1].indices(batch_size)[0] for idx in index_map.values())
    stops = sorted(idx[1].indices(batch_size)[1] for idx in index_map.values())
    if any(a != b for a, b in zip(starts[1:], stops[:-1], strict=False)):
        raise ValueError("This process's devices do not hold a contiguous part of the batch; reorder the devices.")
    local = slice(starts[0], stops[-1])

    def put(a: np.ndarray, shape: tuple[int, ...]) -> jax.Array:
        return jax.make_array_from_process_local_data(sharding, a, shape)

    return put, local
