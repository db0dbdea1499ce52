"""Populations: runs that share every shape, trained as one compiled program.

Members differ only in values that can be traced: the seed (their keys) and the float
hyperparameters of Adam (learning rates and betas, held in the optimizer state by
``optax.inject_hyperparams``). Everything else (model, dataset, batch size m, loss, ...) is the same,
so one ``jax.jit`` program trains them all:

* ``executor="vmap"``: ``jax.vmap`` over members: batched matmuls, the way to fill a GPU or TPU.
* ``executor="map"``: members one after another inside the same program (``jax.lax.map``): plain
  matmuls, which XLA:CPU runs faster than batched ones.
* ``executor="loop"``: one solo program, called for each member in turn from the host: the
  sequential baseline itself, compiled once per population.
* ``executor="auto"`` (default): ``vmap`` on accelerators, ``map`` on CPU (see :func:`choose_executor`).

A population runs on a 2-axis ``("members", "data")`` mesh (:func:`population_mesh`, ``jax.sharding``):
the member axis is split over the first (each device row trains ``P / M`` members) and each member's
mini-batch of m over the second, as in a data-parallel single run. In a multi-process run the mesh
spans every process's devices and process 0 writes the files. A member whose loss becomes NaN or inf is marked diverged with the step and
frozen at the start of the host call (``log_every`` steps) in which it diverged; the other members
go on unaffected.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bce_gan import distributed, io, train
from bce_gan.train import GANDef, GANState, TrainConfig

__all__ = [
    "MEMBER_FIELDS",
    "EXECUTORS",
    "population_key",
    "choose_executor",
    "init_population",
    "make_population_steps",
    "population_mesh",
    "train_population",
]

# Options that may differ between members of one population.
TRACED_FIELDS = ("learning_rate", "g_learning_rate", "d_learning_rate", "adam_b1", "adam_b2")
MEMBER_FIELDS = (*TRACED_FIELDS, "seed")
EXECUTORS = ("auto", "vmap", "map", "loop")

def population_key(config: TrainConfig) -> str:
    """Runs with equal keys can share one population (one compiled program)."""
    shared = {k: v for k, v in config.to_dict().items() if k not in MEMBER_FIELDS}
    return io.json_key(shared)


def choose_executor(gan: GANDef, executor: str = "auto", platform: str | None = None) -> str:
    """How the members of ``gan``'s populations run (``executor`` itself unless ``"auto"``).

    ``auto``: ``vmap`` on accelerators; ``map`` on CPU, where it measured fastest for both the small
    2-D GAN and the course MLP GAN (``python -m experiments.benchmark_population``, 8 members, quiet
    2-core CPU: map 1.04x / 1.07x the members run one after another, vmap 0.93x / 0.98x).
    """
    del gan  # the choice depends on the device alone, as measured so far
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}; allowed: {', '.join(EXECUTORS)}")
    if executor != "auto":
        return executor
    return "map" if (platform or jax.default_backend()) == "cpu" else "vmap"


def _set_hyperparams(opt_state, **values: jax.Array):
    return opt_state._replace(hyperparams={**opt_state.hyperparams, **values})


def init_population(gan: GANDef, configs: Sequence[TrainConfig]) -> GANState:
    """The stacked initial state of the members (leading axis P), each exactly its solo init."""
    keys = jnp.stack([train.run_keys(c.seed)[0] for c in configs])
    states = jax.jit(jax.vmap(functools.partial(train.init_state, gan)))(keys)
    def hyperparams(learning_rates):  # new arrays for each optimizer: no buffer is shared (donation)
        f32 = functools.partial(jnp.array, dtype=jnp.float32)
        return {
            "learning_rate": f32(learning_rates),
            "b1": f32([c.adam_b1 for c in configs]),
            "b2": f32([c.adam_b2 for c in configs]),
        }

    return states.replace(
        g_opt_state=_set_hyperparams(states.g_opt_state, **hyperparams([c.g_lr for c in configs])),
        d_opt_state=_set_hyperparams(states.d_opt_state, **hyperparams([c.d_lr for c in configs])),
    )


def make_population_steps(gan: GANDef, num_steps: int, executor: str, mesh: Mesh | None = None) -> Callable:
    """A jitted ``(states[P], data, keys[P]) -> (states, metrics[P, num_steps])``.

    ``mesh``: a :func:`population_mesh`: the member axis is split over its ``"members"`` axis (P a
    multiple of its size; with ``"map"`` each device runs its members one after another) and each
    member's mini-batch of m over its ``"data"`` axis, as in a data-parallel single run.
    """
    members = 1 if mesh is None else mesh.shape[train.MEMBERS_AXIS]
    batch_sharding = None
    if mesh is not None and mesh.shape[train.DATA_AXIS] > 1:
        batch_sharding = NamedSharding(mesh, PartitionSpec(None, train.DATA_AXIS))
    steps = functools.partial(train.train_steps, gan=gan, num_steps=num_steps, freeze_on_divergence=True,
                              batch_sharding=batch_sharding)
    # Under vmap a sharding constraint inside gets the member axis too: split over "members".
    spmd_axis = None if mesh is None else train.MEMBERS_AXIS
    if executor == "vmap":
        run = jax.vmap(steps, in_axes=(0, None, 0), spmd_axis_name=spmd_axis)
    elif executor == "map":

        def run(states, data, keys):
            def shard(states, keys):
                return jax.lax.map(lambda member: steps(member[0], data, member[1]), (states, keys))

            if members == 1:  # (a vmap over an axis of 1 would turn every matmul into a slower batched one)
                return shard(states, keys)

            def split(x):
                return x.reshape(members, x.shape[0] // members, *x.shape[1:])

            out = jax.vmap(shard, spmd_axis_name=spmd_axis)(jax.tree.map(split, states), split(keys))
            return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)

    elif executor == "loop":
        if members > 1:
            raise ValueError(f"executor='loop' runs members one at a time; its mesh has members={members} (use 1)")
        # One solo program, called once per member from the host: exactly the sequential baseline,
        # compiled once for all members (their learning rates live in their optimizer states).
        solo = jax.jit(steps, donate_argnums=0)

        def run_loop(states, data, keys):
            outs = [solo(jax.tree.map(lambda x: x[i], states), data, keys[i]) for i in range(keys.shape[0])]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

        return run_loop
    else:
        raise ValueError(f"executor={executor!r}; allowed: vmap, map, loop")
    if mesh is None:
        return jax.jit(run, donate_argnums=0)
    by_member = NamedSharding(mesh, PartitionSpec(train.MEMBERS_AXIS))
    return jax.jit(run, donate_argnums=0, out_shardings=(by_member, by_member))


def population_mesh(num_members: int, batch_size: int, mesh: str | None = None, executor: str = "map") -> Mesh | None:
    """The 2-D ``("members", "data")`` mesh of a population (None: one device).

    ``mesh`` is the runs' ``mesh`` option and may fix either axis (``"members=M,data=N"``, ``"data=N"``);
    what it leaves open (all of it for None and ``"auto"``) is chosen from the visible devices D:
    first as many devices for the members as divide P (members need no communication), then for the
    data axis as many of the remaining ``D / M`` as divide m. ``executor="loop"`` keeps members at 1.

    Raises:
      ValueError: a fixed axis does not divide P (members) or needs more devices than are visible.
    """
    sizes = train.parse_mesh(mesh)
    devices = jax.devices()
    fixed_data = sizes.get(train.DATA_AXIS, 1)
    members = sizes.get(train.MEMBERS_AXIS)
    if members is None:
        members = 1 if executor == "loop" else train.largest_divisor(num_members, len(devices) // fixed_data)
    if num_members % members:
        raise ValueError(f"mesh={mesh!r}: members={members} does not divide the population's {num_members} members")
    data = sizes.get(train.DATA_AXIS) or train.largest_divisor(batch_size, len(devices) // members)
    if members * data > len(devices):
        raise ValueError(f"mesh={mesh!r} needs {members * data} devices, and {len(devices)} are visible")
    if jax.process_count() > 1 and members * data != len(devices):
        raise ValueError(f"mesh={mesh!r}: a multi-process sweep must use all {len(devices)} devices; this population "
                         f"({num_members} members, m={batch_size}) fills {members} x {data}")
    if members * data == 1:
        return None
    return Mesh(np.array(devices[: members * data]).reshape(members, data), train.MESH_AXES)


def _shard(tree: Any, mesh: Mesh | None) -> Any:
    if mesh is None:
        return tree
    return distributed.put(tree, NamedSharding(mesh, PartitionSpec(train.MEMBERS_AXIS)))


def _member(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def train_population(
    configs: Sequence[TrainConfig],
    run_dirs: Sequence[str],
    population_dir: str,
    *,
    dataset: Any = None,
    executor: str = "auto",
    on_steps: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Trains the members together; writes each run's files; resumes from the population checkpoint.

    Each run directory gets ``config.json``, ``metrics.jsonl`` (as a solo run writes them),
    ``samples.npy``, ``samples.png`` and ``final.json`` (final metrics, ``diverged``, ``diverged_step``,
    ``wall_time_s``: the population's training time, ``mesh``: its split, e.g. ``"members=4,data=2 (8
    gpu devices)"``).

    Args:
      configs: the members' configs; equal ``population_key``.
      run_dirs: one output directory per member.
      population_dir: where the population's checkpoints go.
      dataset: the loaded dataset (loaded from the first config if None).
      executor: ``"auto"``, ``"vmap"`` or ``"map"``.
      on_steps: called with the number of steps done after each host call (progress bars).

    Returns:
      Each member's final metrics, in the order of ``configs``.
    """
    from bce_gan import report  # noqa: PLC0415

    first = configs[0]
    if len({population_key(c) for c in configs}) != 1:
        raise ValueError("the members of a population must share every option but " + ", ".join(MEMBER_FIELDS))
    for config in configs:
        config.validate()
    dataset = dataset if dataset is not None else train.load_data(first)
    gan = train.create_gan(first, dataset.shape)
    executor = choose_executor(gan, executor)
    mesh = population_mesh(len(configs), first.batch_size, first.mesh, executor)
    primary = distributed.is_primary()  # process 0 writes the results

    for config, run_dir in zip(configs, run_dirs, strict=True):
        os.makedirs(run_dir, exist_ok=True)
        train.check_workdir_config(run_dir, config.to_dict())
        if primary:
            io.write_json(os.path.join(run_dir, "config.json"), config.to_dict())

    states = _shard(init_population(gan, configs), mesh)
    checkpoints = train.Checkpoints(population_dir)
    try:
        if checkpoints.latest_step() is not None:
            states = checkpoints.restore(states)
        start = int(distributed.to_host(states.step)[0])
        rows = [[r for r in io.read_jsonl(os.path.join(d, "metrics.jsonl")) if r["step"] <= start] for d in run_dirs]
        keys = _shard(jnp.stack([train.run_keys(c.seed)[1] for c in configs]), mesh)
        data = train.replicate(np.asarray(dataset.x), mesh)
        lengths = train.chunk_lengths(start, first.num_steps, first.log_every)
        run = {k: make_population_steps(gan, k, executor, mesh) for k in set(lengths)}

        began = time.perf_counter()
        step = start
        for length in lengths:
            states, metrics = run[length](states, data, keys)
            metrics = distributed.to_host(metrics)
            step += length
            for i, run_dir in enumerate(run_dirs):
                rows[i].append(train.summarize_chunk(_member(metrics, i), step))
                if primary:
                    io.write_jsonl(os.path.join(run_dir, "metrics.jsonl"), rows[i])
            if first.checkpoint_every and step % first.checkpoint_every == 0 and step < first.num_steps:
                checkpoints.save(step, states)
            if on_steps is not None:
                on_steps(length)
        if checkpoints.latest_step() != step:
            checkpoints.save(step, states)
        wall_time = time.perf_counter() - began

        sample_keys = jnp.stack([train.run_keys(c.seed)[2] for c in configs])
        sample = jax.jit(jax.vmap(functools.partial(train.generate, gan, num_samples=first.num_samples)))
        samples, diverged_steps = distributed.to_host((sample(states, sample_keys), states.diverged_step))
        finals = []
        for i, run_dir in enumerate(run_dirs):
            final = dict(rows[i][-1]) if rows[i] else {"step": step}
            final.update(train.evaluate_samples(samples[i], dataset, configs[i]))
            final.update(
                diverged=bool(diverged_steps[i] >= 0),
                diverged_step=int(diverged_steps[i]),
                wall_time_s=round(wall_time, 3),
                executor=executor,
                mesh=train.describe_mesh(mesh),
            )
            if primary:
                with io.atomic_path(os.path.join(run_dir, "samples.npy")) as tmp, open(tmp, "wb") as f:
                    np.save(f, samples[i])
                report.save_samples(samples[i], os.path.join(run_dir, "samples.png"), dataset=dataset,
                                    title=os.path.basename(run_dir))
                io.write_json(os.path.join(run_dir, "final.json"), final)
            finals.append(final)
        return finals
    finally:
        checkpoints.close()
