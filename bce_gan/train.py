"""GAN training: one state pytree, a pure jitted train step, K steps per host call, resumable runs.

Reading order: :class:`TrainConfig` (every option, validated before anything compiles),
:class:`GANState` (the one state pytree), :func:`train_step` (the discriminator step, then the
generator step, in one jitted region), :func:`train_steps` (K steps under ``jax.lax.scan``, mini-batches
drawn from the device-resident dataset by index), :func:`train_and_evaluate` (the host loop: logs,
pictures, checkpoints, resume).

Keys: ``key = jax.random.key(seed)``; parameters are initialised from ``fold_in(key, 0)``; step t uses
``fold_in(fold_in(key, 1), t)``, so a resumed run draws exactly the numbers an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bce_gan import io, losses, models

__all__ = [
    "LOSSES",
    "COMPUTE_DTYPES",
    "TrainConfig",
    "GANDef",
    "GANState",
    "TrainingDiverged",
    "create_gan",
    "init_state",
    "train_step",
    "train_steps",
    "parse_mesh",
    "describe_mesh",
    "create_mesh",
    "compile_train_steps",
    "generate",
    "train_and_evaluate",
]

LOSSES = ("non_saturating", "minimax")
COMPUTE_DTYPES = ("float32", "bfloat16")
MEMBERS_AXIS, DATA_AXIS = MESH_AXES = ("members", "data")


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or inf; ``step`` is the first step at which it did."""

    def __init__(self, step: int, metrics: Mapping[str, float]):
        self.step = step
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        super().__init__(
            f"training diverged at step {step}: a loss is not finite ({shown}). "
            "Lower the learning rate, or resume from the last checkpoint with other settings."
        )


# ---------------------------------------------------------------------------------------------
# Configuration.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run. The batch size is m in the docs and plots."""

    dataset: str = "ring8"
    dataset_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model: str = "toy"
    model_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    z_dim: int | None = None
    learning_rate: float = 1e-3
    g_learning_rate: float | None = None  # None: learning_rate
    d_learning_rate: float | None = None  # None: learning_rate
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    batch_size: int = 64
    num_steps: int = 2000
    n_disc: int = 1
    loss: str = "non_saturating"
    label_smoothing: float = 0.0
    seed: int = 0
    log_every: int = 100
    sample_every: int = 0  # 0: pictures at the end only
    checkpoint_every: int = 1000  # 0: a checkpoint at the end only
    num_samples: int = 2500  # generated samples for the final metrics and pictures
    tensorboard: bool = True
    image_metrics: bool = True  # score image samples with the dataset's classifier (trained and cached on first use)
    data_dir: str | None = None
    # Data parallelism: "data=N" splits each mini-batch of m over N devices (m stays the global batch
    # size; BatchNorm statistics and loss means stay global); "auto": over as many of the visible devices
    # as divide m. None: one device (in a multi-process run: "auto"). Sweeps also take "members=M,data=N"
    # (population members over M devices, each member's batch over N); for them None means "auto".
    mesh: str | None = None
    # Computation dtype of both networks ("bfloat16": mixed precision). Parameters, optimizer state,
    # BatchNorm statistics and the BCE stay float32.
    compute_dtype: str = "float32"

    @property
    def g_lr(self) -> float:
        return self.learning_rate if self.g_learning_rate is None else self.g_learning_rate

    @property
    def d_lr(self) -> float:
        return self.learning_rate if self.d_learning_rate is None else self.d_learning_rate

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; allowed: {sorted(known)}")
        values = dict(values)
        for name in ("model_options", "dataset_options"):
            if name in values:  # JSON turns tuples into lists; widths are tuples again here
                values[name] = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in dict(values[name]).items()
                }
        return cls(**values)

    def validate(self) -> TrainConfig:
        """Raises ``ValueError`` naming the first bad option and what is allowed; returns self."""
        from bce_gan.data import DATASET_NAMES  # noqa: PLC0415  (keeps import of train light)

        def need(ok: bool, option: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{option}={getattr(self, option)!r} is invalid: {allowed}")

        need(self.dataset in DATASET_NAMES, "dataset", f"allowed: {', '.join(DATASET_NAMES)}")
        need(self.model in models.MODEL_NAMES, "model", f"allowed: {', '.join(models.MODEL_NAMES)}")
        unknown = sorted(set(self.model_options) - set(models.allowed_options(self.model)))
        need(not unknown, "model_options", f"allowed for {self.model}: {models.allowed_options(self.model)}")
        for name in ("learning_rate", "g_learning_rate", "d_learning_rate"):
            value = getattr(self, name)
            if value is not None:
                need(_is_real(value) and 0 < value < math.inf, name, "a positive finite number")
        for name in ("adam_b1", "adam_b2"):
            need(_is_real(getattr(self, name)) and 0 <= getattr(self, name) < 1, name, "a number in [0, 1)")
        for name in ("batch_size", "num_steps", "n_disc", "log_every", "num_samples"):
            need(_is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "a positive integer")
        for name in ("sample_every", "checkpoint_every", "seed"):
            need(_is_int(getattr(self, name)) and getattr(self, name) >= 0, name, "an integer ≥ 0")
        if self.z_dim is not None:
            need(_is_int(self.z_dim) and self.z_dim >= 1, "z_dim", "a positive integer or None")
        need(self.loss in LOSSES, "loss", f"allowed: {', '.join(LOSSES)}")
        need(_is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)")
        pack = self.model_options.get("pack", self.model_options.get("d_pack", 1))
        if self.batch_size % pack:
            raise ValueError(f"batch_size={self.batch_size} must be a multiple of pack={pack}")
        need(self.compute_dtype in COMPUTE_DTYPES, "compute_dtype", f"allowed: {', '.join(COMPUTE_DTYPES)}")
        if self.compute_dtype != "float32":
            clash = sorted({"dtype", "g_dtype", "d_dtype"} & set(self.model_options))
            need(not clash, "compute_dtype", f"set either compute_dtype or model_options {clash}, not both")
        sizes = parse_mesh(self.mesh)  # ValueError naming the option
        if self.batch_size % sizes.get(DATA_AXIS, 1):
            raise ValueError(f"batch_size={self.batch_size} is not divisible by the data axis ({self.mesh})")
        if math.prod(sizes.values()) > jax.device_count():
            raise ValueError(
                f"mesh={self.mesh!r} is invalid: it needs {math.prod(sizes.values())} devices, and "
                f"{jax.device_count()} are visible"
            )
        return self


def parse_mesh(mesh: str | None) -> dict[str, int]:
    """The axis sizes a ``mesh`` option fixes.

    ``None`` and ``"auto"`` fix none (``{}``); ``"data=N"`` gives ``{"data": N}``; sweeps also take
    ``"members=M"`` and ``"members=M,data=N"``.

    Raises:
      ValueError: naming the option and the allowed forms.
    """
    if mesh is None or mesh == "auto":
        return {}
    error = ValueError(
        f"mesh={mesh!r} is invalid: expected 'auto', 'data=N', or for sweeps 'members=M' or 'members=M,data=N', "
        "with M and N positive integers; or None"
    )
    if not isinstance(mesh, str):
        raise error
    sizes = {}
    for part in mesh.split(","):
        name, sep, count = (text.strip() for text in part.partition("="))
        if name not in MESH_AXES or name in sizes or not sep or not count.isdigit() or int(count) < 1:
            raise error
        sizes[name] = int(count)
    return sizes


def largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# The GAN: static definition and state.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class GANDef:
    """Everything static about a GAN: graph definitions, optimizers and step options.

    Bound into the jitted functions with ``functools.partial``; never traced.
    """

    g_graphdef: Any
    d_graphdef: Any
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    model_fn: Callable[[nnx.Rngs], tuple[nnx.Module, nnx.Module]]
    z_dim: int
    batch_size: int
    n_disc: int = 1
    saturating: bool = False
    label_smoothing: float = 0.0


@struct.dataclass
class GANState:
    """The whole training state: one pytree, checkpointed as is."""

    step: jax.Array  # int32 scalar: steps done
    g_params: nnx.State
    g_rest: nnx.State  # BatchNorm running statistics (empty without BatchNorm)
    d_params: nnx.State
    d_rest: nnx.State
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState
    diverged_step: jax.Array  # int32 scalar: first step with a non-finite loss, −1 if none


def _adam(learning_rate: float, b1: float, b2: float) -> optax.GradientTransformation:
    # inject_hyperparams keeps learning rate and betas in the optimizer state, as traced values: a
    # population of runs with different learning rates shares one compiled program.
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, b1=b1, b2=b2)


def create_gan(config: TrainConfig, data_shape: tuple[int, ...]) -> GANDef:
    """The static GAN definition for ``config`` and samples of ``data_shape``."""
    options = dict(config.model_options)
    if config.compute_dtype != "float32":  # float32 passes nothing: the same program as before the option
        options["dtype"] = config.compute_dtype
    model_fn = functools.partial(models.create_models, config.model, tuple(data_shape), z_dim=config.z_dim, **options)
    g, d = nnx.eval_shape(lambda: model_fn(rngs=nnx.Rngs(0)))
    return GANDef(
        g_graphdef=nnx.graphdef(g),
        d_graphdef=nnx.graphdef(d),
        g_tx=_adam(config.g_lr, config.adam_b1, config.adam_b2),
        d_tx=_adam(config.d_lr, config.adam_b1, config.adam_b2),
        model_fn=lambda rngs: model_fn(rngs=rngs),
        z_dim=config.z_dim or models.default_z_dim(config.model),
        batch_size=config.batch_size,
        n_disc=config.n_disc,
        saturating=config.loss == "minimax",
        label_smoothing=float(config.label_smoothing),
    )


def init_state(gan: GANDef, key: jax.Array) -> GANState:
    """Initial state from a key (jit- and vmap-safe: a population initialises in one call)."""
    g, d = gan.model_fn(nnx.Rngs(key))
    _, g_params, g_rest = nnx.split(g, nnx.Param, ...)
    _, d_params, d_rest = nnx.split(d, nnx.Param, ...)
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        g_rest=g_rest,
        d_params=d_params,
        d_rest=d_rest,
        g_opt_state=gan.g_tx.init(g_params),
        d_opt_state=gan.d_tx.init(d_params),
        diverged_step=jnp.full((), -1, jnp.int32),
    )


def _apply(graphdef, params, rest, x):
    """Runs a model in training mode; returns its output and its updated batch statistics."""
    module = nnx.merge(graphdef, params, rest, copy=True)  # fresh variables in the current trace
    out = module(x)
    return out, nnx.state(module, nnx.Not(nnx.Param))


def generate(gan: GANDef, state: GANState, key: jax.Array, num_samples: int) -> jax.Array:
    """``[num_samples, *data_shape]`` samples of the generator, normalised with their own batch
    statistics (as in training); the state is not changed."""
    z = models.sample_latent(key, num_samples, gan.z_dim)
    samples, _ = _apply(gan.g_graphdef, state.g_params, state.g_rest, z)
    return samples.astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# The train step.
# ---------------------------------------------------------------------------------------------


def train_step(
    state: GANState, batch: jax.Array, key: jax.Array, *, gan: GANDef, latent_sharding: NamedSharding | None = None
) -> tuple[GANState, dict[str, jax.Array]]:
    """One GAN update: ``n_disc`` discriminator steps, then one generator step.

    Args:
      state: the training state.
      batch: ``[n_disc, m, *data_shape]`` real examples, one mini-batch per discriminator step.
      key: this step's key.
      gan: the static definition (bound with ``functools.partial``).
      latent_sharding: data parallelism: how each ``[m, z_dim]`` latent batch is split over devices
        (along m); None: no constraint (one device).

    Returns:
      The new state and scalar metrics: ``d_loss``, ``g_loss``, ``d_real`` (mean D(x) as a
      probability), ``d_fake`` (mean D(G(z))), ``d_grad_norm``, ``g_grad_norm``.
    """
    m = gan.batch_size
    *d_keys, g_key = jax.random.split(key, gan.n_disc + 1)

    def latent(key):
        z = models.sample_latent(key, m, gan.z_dim)
        return z if latent_sharding is None else jax.lax.with_sharding_constraint(z, latent_sharding)

    g_rest, d_params, d_rest, d_opt_state = state.g_rest, state.d_params, state.d_rest, state.d_opt_state

    # Discriminator: real → 1, fake → 0; the generator's output is a constant here.
    for real, d_key in zip(batch, d_keys, strict=True):
        fake, g_rest = _apply(gan.g_graphdef, state.g_params, g_rest, latent(d_key))
        fake = jax.lax.stop_gradient(fake)

        # Everything a loss function touches is passed in as an argument (not closed over), so that
        # nnx variables live in the trace of the gradient that updates them.
        def d_loss_fn(d_params, d_rest, real, fake):
            real_logits_B, rest = _apply(gan.d_graphdef, d_params, d_rest, real)
            fake_logits_B, rest = _apply(gan.d_graphdef, d_params, rest, fake)
            loss = losses.discriminator_loss(real_logits_B, fake_logits_B, label_smoothing=gan.label_smoothing)
            return loss, (rest, real_logits_B, fake_logits_B)

        (d_loss, (d_rest, real_logits_B, fake_logits_B)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
            d_params, d_rest, real, fake
        )
        d_updates, d_opt_state = gan.d_tx.update(d_grads, d_opt_state, d_params)
        d_params = optax.apply_updates(d_params, d_updates)

    # Generator: fresh noise, the discriminator's parameters held fixed.
    z = latent(g_key)

    def g_loss_fn(g_params, g_rest, d_params, d_rest, z):
        fake, new_g_rest = _apply(gan.g_graphdef, g_params, g_rest, z)
        fake_logits_B, new_d_rest = _apply(gan.d_graphdef, d_params, d_rest, fake)
        return losses.generator_loss(fake_logits_B, saturating=gan.saturating), (new_g_rest, new_d_rest)

    (g_loss, (g_rest, d_rest)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.g_params, g_rest, d_params, d_rest, z
    )
    g_updates, g_opt_state = gan.g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    new_state = state.replace(
        step=state.step + 1,
        g_params=g_params,
        g_rest=g_rest,
        d_params=d_params,
        d_rest=d_rest,
        g_opt_state=g_opt_state,
        d_opt_state=d_opt_state,
    )
    metrics = {
        "d_loss": d_loss,
        "g_loss": g_loss,
        # (astype: a no-op in float32; bfloat16 logits give float32 metrics)
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits_B.astype(jnp.float32))),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits_B.astype(jnp.float32))),
        "d_grad_norm": optax.tree.norm(d_grads),
        "g_grad_norm": optax.tree.norm(g_grads),
    }
    return new_state, metrics


def train_steps(
    state: GANState,
    data: jax.Array,
    key: jax.Array,
    *,
    gan: GANDef,
    num_steps: int,
    freeze_on_divergence: bool = False,
    batch_sharding: NamedSharding | None = None,
) -> tuple[GANState, dict[str, jax.Array]]:
    """``num_steps`` train steps under ``jax.lax.scan``; mini-batches drawn from ``data`` inside.

    Args:
      state: the training state.
      data: ``[n, *data_shape]`` the whole dataset, on the device.
      key: the run's training key; step t uses ``fold_in(key, t)``.
      gan: the static definition.
      num_steps: steps to run (static).
      freeze_on_divergence: record the first step whose loss is not finite in
        ``state.diverged_step``, and from then on keep the state this call started from: a diverged
        run is frozen at the start of the chunk in which it diverged (populations use this, so that a
        member's divergence leaves the others untouched; a single run stops on the host instead).
        One select per call, not per step: per step it cost ~30% of a small GAN's step time.
      batch_sharding: data parallelism (static): how each ``[n_disc, m, *data_shape]`` mini-batch is
        split over devices, e.g. ``NamedSharding(mesh, P(None, "data"))``; the latent batches are split
        the same way along m. XLA's SPMD partitioner then splits every activation along m and
        all-reduces the means (BatchNorm statistics and losses stay those of the global batch).
        None: no constraint, the one-device program.

    Returns:
      The state after the steps and the metrics of each step, each ``[num_steps]``.
    """
    n = data.shape[0]
    step_fn = functools.partial(train_step, gan=gan)
    if batch_sharding is not None:
        latent_spec = PartitionSpec(*batch_sharding.spec[1:2])  # the m axis of [n_disc, m, ...]
        step_fn = functools.partial(step_fn, latent_sharding=NamedSharding(batch_sharding.mesh, latent_spec))

    def body(state, _):
        batch_key, step_key = jax.random.split(jax.random.fold_in(key, state.step))
        # Sampling with replacement, by index: no input pipeline, and a resumed run sees the same batches.
        index = jax.random.randint(batch_key, (gan.n_disc, gan.batch_size), 0, n)
        batch = data[index]
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return step_fn(state, batch, step_key)

    end_state, metrics = jax.lax.scan(body, state, length=num_steps)
    if freeze_on_divergence:  # after the loop, from the metrics: the loop body stays the solo one
        bad = ~(jnp.isfinite(metrics["d_loss"]) & jnp.isfinite(metrics["g_loss"]))
        newly = (state.diverged_step < 0) & jnp.any(bad)
        diverged_step = jnp.where(newly, state.step + jnp.argmax(bad).astype(state.step.dtype), state.diverged_step)
        frozen = diverged_step >= 0
        kept = jax.tree.map(lambda end, start: jnp.where(frozen, start, end), end_state, state)
        end_state = kept.replace(step=end_state.step, diverged_step=diverged_step)
    return end_state, metrics


# ---------------------------------------------------------------------------------------------
# The host loop.
# ---------------------------------------------------------------------------------------------


def create_mesh(config: TrainConfig) -> Mesh | None:
    """The 1-D ``("data",)`` mesh of a single run (None: one device).

    ``"data=N"``: the first N devices. ``"auto"`` (and None in a multi-process run): as many devices
    as divide m. A multi-process mesh must span every process's devices.
    """
    sizes = parse_mesh(config.mesh)
    multi_process = jax.process_count() > 1
    if config.mesh is None and not multi_process:
        return None
    if sizes.get(MEMBERS_AXIS, 1) > 1:
        raise ValueError(f"mesh={config.mesh!r}: a members axis is for sweeps; a single run takes 'data=N' or 'auto'")
    devices = jax.devices()
    count = sizes.get(DATA_AXIS) or largest_divisor(config.batch_size, len(devices))
    if count > len(devices):
        raise ValueError(f"mesh={config.mesh!r} is invalid: it needs {count} devices, and {len(devices)} are visible")
    if multi_process and count != len(devices):
        raise ValueError(f"mesh={config.mesh!r} with m={config.batch_size}: a multi-process run must use all "
                         f"{len(devices)} devices of its {jax.process_count()} processes (m divisible by {len(devices)})")
    if DATA_AXIS not in sizes and count == 1:
        return None
    return Mesh(np.array(devices[:count]), (DATA_AXIS,))


def describe_mesh(mesh: Mesh | None) -> str:
    """E.g. ``"members=4,data=2 (8 cpu devices)"``; ``"none"`` without a mesh."""
    if mesh is None:
        return "none"
    count, kind = mesh.devices.size, mesh.devices.flat[0].platform
    axes = ",".join(f"{name}={size}" for name, size in mesh.shape.items())
    return f"{axes} ({count} {kind} device{'' if count == 1 else 's'})"


def compile_train_steps(gan: GANDef, num_steps: int, mesh: Mesh | None = None) -> Callable:
    """``jax.jit`` of :func:`train_steps` (state donated). With a mesh, the state, data and metrics are
    replicated over its devices and each mini-batch is split along m (the ``"data"`` axis)."""
    if mesh is None:
        return jax.jit(functools.partial(train_steps, gan=gan, num_steps=num_steps), donate_argnums=0)
    batch_sharding = NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))
    steps = functools.partial(train_steps, gan=gan, num_steps=num_steps, batch_sharding=batch_sharding)
    return jax.jit(steps, donate_argnums=0, out_shardings=NamedSharding(mesh, PartitionSpec()))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """``tree`` copied onto every device of ``mesh`` (without one: onto the default device). In a
    multi-process run every process must pass the same values (host NumPy arrays, or arrays replicated
    already)."""
    if mesh is None:
        return jax.device_put(tree)
    from bce_gan import distributed  # noqa: PLC0415

    return distributed.put(tree, _replicated(mesh))


def _replicated(mesh: Mesh | None) -> NamedSharding | None:
    return None if mesh is None else NamedSharding(mesh, PartitionSpec())


class ProcessLog:
    """``<workdir>/logs/process_<i>.jsonl`` in a multi-process run: one line per host call of this
    process (step, wall time, its devices and the losses it saw); nothing in a single-process run."""

    def __init__(self, workdir: str, mesh: Mesh | None):
        self.path = None
        if jax.process_count() > 1:
            self.path = os.path.join(workdir, "logs", f"process_{jax.process_index()}.jsonl")
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.began = time.perf_counter()
            self.write({"event": "start", "process": jax.process_index(), "processes": jax.process_count(),
                        "local_devices": [str(d) for d in jax.local_devices()], "mesh": describe_mesh(mesh)})

    def write(self, row: Mapping[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({**row, "wall_s": round(time.perf_counter() - self.began, 3)}) + "\n")


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(init key, training key, sampling key) of a run."""
    key = jax.random.key(seed)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)


def chunk_lengths(start: int, num_steps: int, log_every: int) -> list[int]:
    """Steps per host call from ``start`` to ``num_steps``: ends on multiples of ``log_every``."""
    lengths, step = [], start
    while step < num_steps:
        end = min((step // log_every + 1) * log_every, num_steps)
        lengths.append(end - step)
        step = end
    return lengths


def summarize_chunk(metrics: Mapping[str, Any], step: int) -> dict[str, float]:
    """One log row: the mean of each metric over the chunk's steps, at the chunk's last step."""
    row = {"step": int(step)}
    row.update({name: float(np.mean(np.asarray(values))) for name, values in metrics.items()})
    return row


def first_bad_step(metrics: Mapping[str, Any], first_step: int) -> int | None:
    """The step of the first non-finite loss in a chunk's metrics, or None."""
    bad = ~(np.isfinite(np.asarray(metrics["d_loss"])) & np.isfinite(np.asarray(metrics["g_loss"])))
    return first_step + int(np.argmax(bad)) if bad.any() else None


def load_data(config: TrainConfig, split: str = "train"):
    """The dataset of ``config``, scaled to the generator's output range."""
    from bce_gan.data import load_dataset  # noqa: PLC0415

    return load_dataset(
        config.dataset,
        split,
        value_range=models.output_range(config.model),
        data_dir=config.data_dir,
        **config.dataset_options,
    )


def evaluate_samples(samples: np.ndarray, dataset, config: TrainConfig | None = None) -> dict[str, Any]:
    """Final sample-quality metrics.

    2-D mixtures: modes captured, high-quality fraction, reverse KL (``metrics.mode_metrics``).
    Images (unless ``config.image_metrics`` is False): Fréchet distance and KID on the penultimate
    features of the dataset's classifier against held-out real images, each with its real-vs-real
    baseline, the class-histogram KL to uniform and classes hit (``classifier.image_metrics``).
    """
    modes = dataset.info.get("modes")
    if modes is not None:
        from bce_gan import metrics  # noqa: PLC0415

        result = metrics.mode_metrics(jnp.asarray(samples), jnp.asarray(modes, jnp.float32), dataset.info["std"])
        return {name: float(value) for name, value in result.items()}
    if dataset.value_range is None or (config is not None and not config.image_metrics):
        return {}
    from bce_gan import classifier  # noqa: PLC0415

    return classifier.image_metrics(
        samples, dataset.name, value_range=dataset.value_range, data_dir=None if config is None else config.data_dir
    )


class Checkpoints:
    """Orbax checkpoints of a state pytree under ``workdir/checkpoints`` (written atomically by orbax)."""

    def __init__(self, workdir: str, max_to_keep: int = 2):
        import orbax.checkpoint as ocp  # noqa: PLC0415

        self._ocp = ocp
        self.manager = ocp.CheckpointManager(
            os.path.abspath(os.path.join(workdir, "checkpoints")),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self.manager.save(step, args=self._ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def restore(self, target: Any, step: int | None = None) -> Any:
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), target
        )
        return self.manager.restore(step, args=self._ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()


def check_workdir_config(workdir: str, config_dict: dict[str, Any], *, ignore: tuple[str, ...] = ("num_steps",)) -> None:
    """Refuses to resume a workdir written for other settings (``num_steps`` may grow).

    An option missing from an older ``config.json`` counts as its default (options added later, such
    as ``mesh`` and ``compute_dtype``, do not make older runs unresumable).
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    old = {**{k: v for k, v in TrainConfig().to_dict().items() if k in config_dict}, **old}
    changed = sorted(k for k in set(old) | set(config_dict) if k not in ignore and old.get(k) != config_dict.get(k))
    if changed:
        details = "; ".join(f"{k}: {old.get(k)!r} -> {config_dict.get(k)!r}" for k in changed)
        raise ValueError(
            f"{workdir} holds a run with other settings ({details}); use a new workdir or delete this one."
        )


def train_and_evaluate(config: TrainConfig, workdir: str, *, progress: bool = False) -> dict[str, Any]:
    """Trains a GAN, writing into ``workdir``; resumes from its last checkpoint if there is one.

    Writes ``config.json``, ``metrics.jsonl`` (one row per ``log_every`` steps: means over those
    steps), TensorBoard event files under ``tb/``, sample pictures ``samples_<step>.png`` (an image
    grid, or a scatter plot with the true modes for 2-D data), ``samples.npy`` (the final samples),
    ``final.json`` (final metrics) and orbax checkpoints under ``checkpoints/``.

    Returns:
      The final metrics: the last log row plus the sample-quality metrics.

    Raises:
      TrainingDiverged: a loss became NaN or inf (the message names the step; the files keep the
        steps before it).
    """
    from bce_gan import distributed, report  # noqa: PLC0415

    config.validate()
    dataset = load_data(config)
    if config.batch_size > dataset.x.shape[0]:
        raise ValueError(f"batch_size={config.batch_size} is larger than the dataset ({dataset.x.shape[0]} examples)")
    mesh = create_mesh(config)
    primary = distributed.is_primary()  # process 0 writes the results; every process its own log
    os.makedirs(workdir, exist_ok=True)
    config_dict = config.to_dict()
    check_workdir_config(workdir, config_dict)
    if primary:
        io.write_json(os.path.join(workdir, "config.json"), config_dict)
    process_log = ProcessLog(workdir, mesh)

    gan = create_gan(config, dataset.shape)
    init_key, train_key, sample_key = run_keys(config.seed)
    state = jax.jit(functools.partial(init_state, gan), out_shardings=_replicated(mesh))(init_key)  # before restore: its sharding
    checkpoints = Checkpoints(workdir)
    if checkpoints.latest_step() is not None:
        state = checkpoints.restore(state)
    start = int(state.step)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    rows = [row for row in io.read_jsonl(metrics_path) if row["step"] <= start]

    data = replicate(np.asarray(dataset.x), mesh)
    run = {k: compile_train_steps(gan, k, mesh) for k in sorted(set(chunk_lengths(start, config.num_steps, config.log_every)))}
    sample_fn = jax.jit(functools.partial(generate, gan, num_samples=config.num_samples), out_shardings=_replicated(mesh))
    writer = None
    if config.tensorboard and primary:
        from tensorboardX import SummaryWriter  # noqa: PLC0415

        writer = SummaryWriter(os.path.join(workdir, "tb"))

    def save_pictures(state, step):
        samples = distributed.to_host(sample_fn(state, sample_key))
        if primary:
            report.save_samples(samples, os.path.join(workdir, f"samples_{step}.png"), dataset=dataset, title=f"step {step}")
        return samples

    bar = None
    if progress and primary:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=config.num_steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    try:
        step = start
        for length in chunk_lengths(start, config.num_steps, config.log_every):
            state, metrics = run[length](state, data, train_key)
            metrics = distributed.to_host(metrics)
            bad = first_bad_step(metrics, step)
            if bad is not None:
                raise TrainingDiverged(bad, {k: float(np.asarray(v)[bad - step]) for k, v in metrics.items()})
            step += length
            row = summarize_chunk(metrics, step)
            rows.append(row)
            process_log.write(row)
            if primary:
                io.write_jsonl(metrics_path, rows)
            if writer is not None:
                for name, value in row.items():
                    if name != "step":
                        writer.add_scalar(name, value, step)
            if bar is not None:
                bar.update(length)
                bar.set_postfix(d_loss=f"{row['d_loss']:.3f}", g_loss=f"{row['g_loss']:.3f}")
            if config.sample_every and step % config.sample_every == 0 and step < config.num_steps:
                save_pictures(state, step)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.num_steps:
                checkpoints.save(step, state)
        if checkpoints.latest_step() != step:
            checkpoints.save(step, state)
        samples = save_pictures(state, step)
        final = dict(rows[-1]) if rows else {"step": step}
        final.update(evaluate_samples(samples, dataset, config))
        if primary:
            with io.atomic_path(os.path.join(workdir, "samples.npy")) as tmp, open(tmp, "wb") as f:
                np.save(f, samples)
            io.write_json(os.path.join(workdir, "final.json"), final)
        return final
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        checkpoints.close()
