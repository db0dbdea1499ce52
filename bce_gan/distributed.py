"""Multi-process (multi-host) runs on JAX's own distributed runtime (``jax.distributed``).

One Python process per host (per GPU node, per Cloud TPU VM worker) runs the same program; after
:func:`initialize`, ``jax.devices()`` lists the devices of every process and a ``jax.sharding.Mesh``
over them spans the hosts. The training code then runs unchanged: state and data are replicated
(``NamedSharding(mesh, P())``), each mini-batch is split along m over the whole mesh, and XLA inserts
the cross-host all-reduces. Process 0 writes the results (``config.json``, ``metrics.jsonl``,
``final.json``, samples, TensorBoard); every process writes its own log, ``logs/process_<i>.jsonl``;
orbax writes checkpoints from all processes together (the workdir must be on a shared filesystem).

How a process learns its place, in this order:

* arguments (the CLI flags ``--coordinator-address HOST:PORT --num-processes N --process-id I``);
* environment variables ``BCE_GAN_COORDINATOR_ADDRESS``, ``BCE_GAN_NUM_PROCESSES``,
  ``BCE_GAN_PROCESS_ID``;
* ``auto_detect=True`` (the ``--distributed`` flag): ``jax.distributed.initialize()`` finds them itself on
  Cloud TPU, SLURM, Open MPI and Kubernetes.

Without any of these the run is a single process, as before.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

__all__ = ["ENV_VARS", "initialize", "is_primary", "barrier", "put", "to_host"]

ENV_VARS = {
    "coordinator_address": "BCE_GAN_COORDINATOR_ADDRESS",
    "num_processes": "BCE_GAN_NUM_PROCESSES",
    "process_id": "BCE_GAN_PROCESS_ID",
}


def _setting(name: str, value: Any) -> Any:
    """``value``, else the environment variable of ``name`` (integers parsed), else None."""
    if value is not None:
        return value
    text = os.environ.get(ENV_VARS[name])
    if text is None or not text.strip():
        return None
    if name == "coordinator_address":
        return text.strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{ENV_VARS[name]}={text!r} is not an integer") from None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto_detect: bool = False,
) -> bool:
    """Joins this process to a multi-process run if asked to; returns whether it did.

    Must run before anything else touches JAX's devices. The three settings come from the arguments
    or the ``BCE_GAN_*`` environment variables (:data:`ENV_VARS`); all three, or none with
    ``auto_detect`` (cluster detection by ``jax.distributed.initialize()``).

    Raises:
      ValueError: only some of the three settings are given, or they are out of range.
    """
    settings = {
        "coordinator_address": _setting("coordinator_address", coordinator_address),
        "num_processes": _setting("num_processes", num_processes),
        "process_id": _setting("process_id", process_id),
    }
    given = {k: v for k, v in settings.items() if v is not None}
    if not given:
        if auto_detect:
            jax.distributed.initialize()
            return True
        return False
    missing = [k for k in settings if k not in given]
    if missing:
        raise ValueError(
            "a multi-process run needs coordinator_address, num_processes and process_id; missing "
            + ", ".join(f"{k} (--{k.replace('_', '-')} or {ENV_VARS[k]})" for k in missing)
        )
    count, index, address = settings["num_processes"], settings["process_id"], settings["coordinator_address"]
    if not (isinstance(count, int) and count >= 1):
        raise ValueError(f"num_processes={count!r} must be a positive integer")
    if not (isinstance(index, int) and 0 <= index < count):
        raise ValueError(f"process_id={index!r} must be an integer in [0, num_processes={count})")
    host, sep, port = address.rpartition(":")
    if not (host and sep and port.isdigit()):
        raise ValueError(f"coordinator_address={address!r} must be HOST:PORT, e.g. 10.0.0.1:1234")
    jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    return True


def is_primary() -> bool:
    """True in process 0, the one that writes results (always true in a single-process run)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process has reached the barrier ``name`` (nothing to wait for with one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(name)


def put(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """``tree`` (the same values on every process) laid out as ``sharding``.

    ``jax.device_put`` in a single process. Across processes it can only place what a process's own
    devices hold, so each process builds its pieces from its copy of the whole value
    (``jax.make_array_from_callback``; PRNG keys through their raw key data).
    """
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def place(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(place(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, tree)


def to_host(tree: Any) -> Any:
    """``tree``'s arrays as NumPy arrays, whole, on every process.

    A single process fetches them (``jax.device_get``). In a multi-process run an array may live partly
    on other hosts' devices, so its pieces are gathered from all processes
    (``jax.experimental.multihost_utils.process_allgather``; all processes must call this together).
    """
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils  # noqa: PLC0415

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
