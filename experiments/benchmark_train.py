"""Training speed of the GANs: JAX (one jitted scan) against two PyTorch eager loops and the matmul peak.

Run::

    python -m experiments.benchmark_train              # m = 32, 128, 512, 2048 and the 2-D GAN
    python -m experiments.benchmark_train --batch-sizes 128 --no-toy --repeats 5 --seconds 0.5

Runtime on the project's shared 2-core CPU: about 8 minutes with the defaults (7 repeats × 5 models × 5
variants of ≥ 1 s each, about 1 minute of JAX compilation, and single PyTorch iterations that take seconds
when 2 OpenMP threads meet other processes); ``--batch-sizes 128 --no-toy --repeats 5`` takes about 2.

Writes nothing. Prints the library versions, the load average (``os.getloadavg()``) at the start, after
each repeat and at the end, the measured float32 matmul peak, and a Markdown table, one row per model, of
the median training iterations per second of

- **JAX**: ``bce_gan.train.train_steps``, the whole iteration (D step, then G step on fresh noise, Adam on
  both) in one jitted function, the state donated, K iterations per call under ``lax.scan``;
- **course**: the course notebook's PyTorch loop, literally (``gen(noise)`` with autograd on in the D step,
  ``disc(fake.detach())``, ``backward(retain_graph=True)``, default ``Adam``);
- **tuned**: the strongest eager PyTorch loop we know for the same update order: the generator's forward
  under ``no_grad`` in the D step, D's parameters frozen (``requires_grad_(False)``) in the G step,
  ``Adam(fused=True)`` (``foreach=True`` where fused is not supported), ``zero_grad(set_to_none=True)``,
  labels allocated once;

with the ratios JAX/course and JAX/tuned and the fraction of the matmul peak JAX achieves. Then a details
table (FLOPs per iteration, K, min–max over repeats, PyTorch thread counts, cores used, JAX/tuned per
CPU-second, the tuned loop's fraction of peak) and a check against the targets of the issue. Both PyTorch
columns are skipped with ``--no-torch`` or when ``import torch`` fails (as in CI).

The models (``COURSE_MLP``, ``TOY_2D``): the course MLP GAN on 28×28×1 images (z 64; G
64→128→256→512→1024 with BatchNorm + ReLU → 784 sigmoid; D 784→512→256→128 with LeakyReLU 0.2 → 1
logit), Adam lr 1e-5, betas (0.9, 0.999), at each m of ``--batch-sizes``; and the PacGAN 2-D GAN (G 2→4×400 BatchNorm ReLU→2; D 3
maxout layers of 200 units × 5 pieces → 1, N(0, 0.02) init), Adam lr 1e-4, betas (0.8, 0.999), m = 100.
BatchNorm momentum 0.1 (PyTorch's convention) and eps 1e-5 on both sides. Real batches are drawn by index
from an in-memory array: uniform noise of ``--num-examples`` images (no download) for the MLP, ``ring8``
points for the 2-D GAN; the same array feeds JAX and PyTorch.

Method. All variants live in one process. After a warm-up (JAX compilation, the first PyTorch steps), each
repeat measures the matmul peak and, model by model, each variant back to back (the order of the variants
rotates from one repeat to the next), each for the same wall-clock budget: whole calls (JAX: K
iterations; PyTorch: one iteration) until ``--seconds`` have passed, blocking on the results
(``block_until_ready``). It/s are medians
over repeats; ratios and fractions of peak are medians of the per-repeat ratios, so that a change of load
between repeats cancels. JAX's K is chosen so one call lasts at least ``--call-seconds`` even at the
matmul peak. JAX uses all cores. Each PyTorch loop runs twice per repeat, with 1 intra-op thread and with
all cores (``torch.set_num_threads``), and its it/s in that repeat is the faster of the two
(``--torch-threads auto``; a number fixes it): on a 2-core machine that other processes load, PyTorch with
2 OpenMP threads is often several times (at worst a hundred times) slower than with 1, while on an idle
machine 2 threads win at small m; the peer should be at its best whatever the load. The details table
gives how often each thread count won, the cores each variant actually got (CPU time / wall time) and the
JAX/tuned ratio per CPU-second, which a change in the share of the machine does not move.

FLOP count (:func:`matmul_flops_per_iteration`): matmuls only (BatchNorm, activations, losses and Adam are
left out). A Linear layer of ``in → out`` on a batch of m costs 2·m·in·out FLOPs forward, the same again
for the gradient of its input and again for the gradient of its weights. Per iteration:

- D step: G forward once (no gradient: ×1); D forward and backward on the real and on the fake batch
  (weight and input gradients: ×3 per layer, except the first layer, whose input needs no gradient: ×2);
- G step: G forward and backward (×3, the first layer ×2); D forward and backward for the gradient of its
  input only, its weights being held fixed (×2 per layer).

So D runs forward 3 times and G twice per iteration; for the course MLP this is 19.4 MFLOP per example
(9.9 GFLOP per iteration at m = 512; XLA's cost analysis of the compiled step, elementwise work
included, gives 10.0). The peak is the median rate of ``jnp.dot`` on ``--peak-size``²
float32 matrices (2·n³ FLOPs each), measured in every repeat.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bce_gan.train import TrainConfig, create_gan, init_state, run_keys, train_steps

# What the issue's author measured with a straightforward JAX version, per m: (vs course, vs tuned).
ISSUE_RATIOS = {32: (1.90, 1.26), 128: (1.47, 1.12), 512: (1.17, 1.03), 2048: (1.06, 0.96)}
ISSUE_PEAK_FRACTION_AT_512 = 0.82


# ---------------------------------------------------------------------------------------------
# The models, described once for both frameworks.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Model:
    """A GAN of Linear layers, its optimiser settings and its data; the same for JAX and PyTorch."""

    name: str
    z_dim: int
    g_hidden: tuple[int, ...]  # Linear -> BatchNorm -> ReLU
    data_shape: tuple[int, ...]
    g_sigmoid: bool  # sigmoid on the generator's output
    d_hidden: tuple[int, ...]  # Linear(width * maxout_pieces) -> maxout, or Linear -> LeakyReLU(0.2)
    maxout_pieces: int
    init_std: float | None  # N(0, init_std) weights and zero biases; None: each framework's default
    learning_rate: float
    adam_b1: float
    adam_b2: float
    dataset: str
    model: str  # bce_gan model name

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    def g_layers(self) -> list[tuple[int, int]]:
        """(in, out) of each Linear of the generator, input first."""
        widths = (self.z_dim, *self.g_hidden, self.data_dim)
        return list(zip(widths[:-1], widths[1:]))

    def d_layers(self) -> list[tuple[int, int]]:
        """(in, out) of each Linear of the discriminator, input first (maxout layers have width × pieces)."""
        ins = (self.data_dim, *self.d_hidden)
        outs = (*(w * self.maxout_pieces for w in self.d_hidden), 1)
        return list(zip(ins, outs))

    def config(self, batch_size: int) -> TrainConfig:
        return TrainConfig(
            dataset=self.dataset,
            model=self.model,
            batch_size=batch_size,
            learning_rate=self.learning_rate,
            adam_b1=self.adam_b1,
            adam_b2=self.adam_b2,
        )


COURSE_MLP = Model(
    name="course MLP",
    z_dim=64,
    g_hidden=(128, 256, 512, 1024),
    data_shape=(28, 28, 1),
    g_sigmoid=True,
    d_hidden=(512, 256, 128),
    maxout_pieces=1,
    init_std=None,
    learning_rate=1e-5,
    adam_b1=0.9,
    adam_b2=0.999,
    dataset="mnist",
    model="mlp",
)
TOY_2D = Model(
    name="2-D GAN",
    z_dim=2,
    g_hidden=(400, 400, 400, 400),
    data_shape=(2,),
    g_sigmoid=False,
    d_hidden=(200, 200, 200),
    maxout_pieces=5,
    init_std=0.02,
    learning_rate=1e-4,
    adam_b1=0.8,
    adam_b2=0.999,
    dataset="ring8",
    model="toy",
)
TOY_BATCH_SIZE = 100


def matmul_flops_per_iteration(model: Model, batch_size: int) -> int:
    """Matmul FLOPs of one training iteration (one D step, one G step); see the module docstring."""

    def passes(layers: list[tuple[int, int]], first: int, rest: int) -> int:
        return sum(2 * batch_size * i * o * (first if k == 0 else rest) for k, (i, o) in enumerate(layers))

    g, d = model.g_layers(), model.d_layers()
    d_step = passes(g, 1, 1) + 2 * passes(d, 2, 3)  # G forward without gradient; D on real and fake
    g_step = passes(g, 2, 3) + passes(d, 2, 2)  # G weights and inputs; D inputs only
    return d_step + g_step


def _kernel_shapes(params: Any) -> list[tuple[int, int]]:
    return sorted(tuple(x.shape) for x in jax.tree.leaves(params) if x.ndim == 2)


def check_jax_layers(model: Model, state: Any) -> None:
    """Raises ``AssertionError`` unless the JAX networks have exactly the Linear layers counted here."""
    for net, params, layers in (("G", state.g_params, model.g_layers()), ("D", state.d_params, model.d_layers())):
        found = _kernel_shapes(params)
        if found != sorted(layers):
            raise AssertionError(f"{model.name}: JAX {net} has Linear kernels {found}, the benchmark counts {layers}")


def _param_count(params: Any) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


# ---------------------------------------------------------------------------------------------
# Variants: something that runs a number of units (calls or iterations), blocking until done.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Variant:
    """One way of training one model at one m ("JAX", "course" or "tuned"), timed as a whole."""

    name: str
    run: Callable[[int], None]  # run(units) blocks until the work is done
    iters_per_unit: int
    threads: int | None = None  # PyTorch's intra-op threads for this variant; None: JAX

    @property
    def key(self) -> str:
        return self.name if self.threads is None else f"{self.name}@{self.threads}"

    def measure(self, seconds: float) -> tuple[float, float]:
        """Runs whole units for at least ``seconds`` (one unit at least); returns (it/s, cores used), where
        cores used = this process's CPU time / wall time."""
        units, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            self.run(1)
            units += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return units * self.iters_per_unit / elapsed, (time.process_time() - cpu_start) / elapsed


def jax_variant(model: Model, batch_size: int, data: jax.Array, num_steps: int) -> tuple[Variant, Any]:
    """The lead's training code, as a training run uses it; returns the variant and the GAN state."""
    gan = create_gan(model.config(batch_size), model.data_shape)
    init_key, train_key, _ = run_keys(0)
    holder = {"state": jax.jit(functools.partial(init_state, gan))(init_key)}
    step_fn = jax.jit(functools.partial(train_steps, gan=gan, num_steps=num_steps), donate_argnums=0)

    def run(units: int) -> None:
        metrics = None
        for _ in range(units):
            holder["state"], metrics = step_fn(holder["state"], data, train_key)
        jax.block_until_ready((holder["state"], metrics))
        holder["metrics"] = metrics

    return Variant("JAX", run, num_steps), holder


# ---------------------------------------------------------------------------------------------
# PyTorch (optional).
# ---------------------------------------------------------------------------------------------


def import_torch() -> tuple[Any, str | None]:
    """``(torch, None)``, or ``(None, why)`` when PyTorch cannot be imported."""
    try:
        import torch  # noqa: PLC0415
    except ImportError as error:  # CI installs no torch
        return None, f"PyTorch not importable ({error}); torch columns skipped"
    return torch, None


def torch_models(torch: Any, model: Model) -> tuple[Any, Any]:
    """(generator, discriminator) as ``nn.Sequential`` of the course's blocks, in training mode."""
    nn = torch.nn

    class Maxout(nn.Module):
        def __init__(self, pieces: int):
            super().__init__()
            self.pieces = pieces

        def forward(self, x):  # units x pieces, pieces consecutive: as the JAX reshape
            return x.view(x.shape[0], -1, self.pieces).amax(dim=-1)

    g_blocks = []
    for i, o in model.g_layers()[:-1]:
        g_blocks += [nn.Linear(i, o), nn.BatchNorm1d(o, momentum=0.1, eps=1e-5), nn.ReLU(inplace=True)]
    g_blocks.append(nn.Linear(*model.g_layers()[-1]))
    if model.g_sigmoid:
        g_blocks.append(nn.Sigmoid())
    d_blocks = []
    for i, o in model.d_layers()[:-1]:
        d_blocks.append(nn.Linear(i, o))
        d_blocks.append(Maxout(model.maxout_pieces) if model.maxout_pieces > 1 else nn.LeakyReLU(0.2, inplace=True))
    d_blocks.append(nn.Linear(*model.d_layers()[-1]))
    gen, disc = nn.Sequential(*g_blocks), nn.Sequential(*d_blocks)
    if model.init_std is not None:
        for layer in (*gen, *disc):
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, model.init_std)
                nn.init.zeros_(layer.bias)
    return gen.train(), disc.train()


def torch_adam(torch: Any, params, model: Model, *, tuned: bool) -> tuple[Any, str]:
    """The course's ``Adam``, or the tuned one: fused where this build supports it on CPU, else foreach."""
    params = list(params)
    kwargs = {"lr": model.learning_rate, "betas": (model.adam_b1, model.adam_b2)}
    if not tuned:
        return torch.optim.Adam(params, **kwargs), "default"
    try:
        opt = torch.optim.Adam(params, fused=True, **kwargs)
        # fused support is checked when the optimiser steps; try one step on a throwaway copy.
        probe = [torch.zeros(2, requires_grad=True)]
        probe[0].grad = torch.ones(2)
        torch.optim.Adam(probe, fused=True, **kwargs).step()
        return opt, "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, foreach=True, **kwargs), "foreach"


def torch_course_loop(torch: Any, model: Model, batch_size: int, data) -> Callable[[int], None]:
    """The course notebook's training loop, literally (real batches drawn by index from ``data``)."""
    gen, disc = torch_models(torch, model)
    gen_opt, _ = torch_adam(torch, gen.parameters(), model, tuned=False)
    disc_opt, _ = torch_adam(torch, disc.parameters(), model, tuned=False)
    criterion = torch.nn.BCEWithLogitsLoss()
    n, m, z_dim = data.shape[0], batch_size, model.z_dim

    def run(iterations: int) -> None:
        for _ in range(iterations):
            real = data[torch.randint(0, n, (m,))]
            disc_opt.zero_grad()
            fake_noise = torch.randn(m, z_dim)
            fake = gen(fake_noise)
            disc_fake_pred = disc(fake.detach())
            disc_fake_loss = criterion(disc_fake_pred, torch.zeros_like(disc_fake_pred))
            disc_real_pred = disc(real)
            disc_real_loss = criterion(disc_real_pred, torch.ones_like(disc_real_pred))
            disc_loss = (disc_fake_loss + disc_real_loss) / 2
            disc_loss.backward(retain_graph=True)
            disc_opt.step()

            gen_opt.zero_grad()
            fake_noise_2 = torch.randn(m, z_dim)
            fake_2 = gen(fake_noise_2)
            disc_fake_pred = disc(fake_2)
            gen_loss = criterion(disc_fake_pred, torch.ones_like(disc_fake_pred))
            gen_loss.backward()
            gen_opt.step()

    run.models = (gen, disc)  # type: ignore[attr-defined]
    return run


def torch_tuned_loop(torch: Any, model: Model, batch_size: int, data) -> tuple[Callable[[int], None], str]:
    """The same update order, eager PyTorch at its best; returns the loop and the Adam variant used."""
    gen, disc = torch_models(torch, model)
    gen_opt, adam_kind = torch_adam(torch, gen.parameters(), model, tuned=True)
    disc_opt, _ = torch_adam(torch, disc.parameters(), model, tuned=True)
    criterion = torch.nn.BCEWithLogitsLoss()
    d_params = list(disc.parameters())
    n, m, z_dim = data.shape[0], batch_size, model.z_dim
    zeros, ones = torch.zeros(m, 1), torch.ones(m, 1)

    def run(iterations: int) -> None:
        for _ in range(iterations):
            real = data[torch.randint(0, n, (m,))]
            with torch.no_grad():
                fake = gen(torch.randn(m, z_dim))
            disc_opt.zero_grad(set_to_none=True)
            d_loss = (criterion(disc(fake), zeros) + criterion(disc(real), ones)) / 2
            d_loss.backward()
            disc_opt.step()

            for p in d_params:
                p.requires_grad_(False)
            gen_opt.zero_grad(set_to_none=True)
            g_loss = criterion(disc(gen(torch.randn(m, z_dim))), ones)
            g_loss.backward()
            gen_opt.step()
            for p in d_params:
                p.requires_grad_(True)

    run.models = (gen, disc)  # type: ignore[attr-defined]
    return run, adam_kind


# ---------------------------------------------------------------------------------------------
# The matmul peak.
# ---------------------------------------------------------------------------------------------


def peak_variant(size: int) -> tuple[Variant, int]:
    """``jnp.dot`` of two ``[size, size]`` float32 matrices; returns the variant and FLOPs per call."""
    a_key, b_key = jax.random.split(jax.random.key(42))
    a = jax.random.normal(a_key, (size, size), jnp.float32)
    b = jax.random.normal(b_key, (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)

    def run(units: int) -> None:
        out = None
        for _ in range(units):
            out = dot(a, b)
        jax.block_until_ready(out)

    return Variant("peak", run, 1), 2 * size**3


# ---------------------------------------------------------------------------------------------
# The benchmark.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One model at one m: its variants and, per variant key, (it/s, cores used) of each repeat."""

    label: str
    model: Model
    batch_size: int
    flops: int
    variants: list[Variant]
    jax_holder: dict[str, Any]
    samples: dict[str, list[tuple[float, float]]] = dataclasses.field(default_factory=dict)

    def best(self, name: str) -> list[tuple[float, float, int | None]]:
        """Per repeat, (it/s, cores used, threads) of the fastest variant called ``name``."""
        variants = [v for v in self.variants if v.name == name]
        per_repeat = zip(*(self.samples[v.key] for v in variants), strict=True)
        return [max((*sample, v.threads) for sample, v in zip(repeat, variants)) for repeat in per_repeat]


def _median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f} (1/5/15 min)".format(*os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batch-sizes", default="32,128,512,2048", help="m of the course MLP GAN, comma-separated")
    parser.add_argument("--no-toy", action="store_true", help="leave out the 2-D GAN")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch loops")
    parser.add_argument("--repeats", type=int, default=7, help="measurements per variant (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="about how long one measurement lasts")
    parser.add_argument("--call-seconds", type=float, default=0.2, help="JAX: one call lasts at least this at peak")
    parser.add_argument(
        "--torch-threads",
        default="auto",
        help="PyTorch intra-op threads: a number, or auto (1 and all cores, the faster in each repeat)",
    )
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the matrices of the peak matmul")
    parser.add_argument("--num-examples", type=int, default=10_000, help="size of the in-memory MLP dataset")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    if args.repeats < 1 or args.seconds <= 0 or not all(m >= 1 for m in args.batch_sizes):
        parser.error("--repeats and every m must be ≥ 1, --seconds > 0")
    cpus = os.cpu_count() or 1
    args.thread_choices = sorted({1, cpus}) if args.torch_threads == "auto" else [int(args.torch_threads)]
    return args


def build_case(
    model: Model, batch_size: int, data: jax.Array, torch: Any, args: argparse.Namespace, peak_flops_s: float
) -> Case:
    """Compiles and warms up the variants of one model at one m; prints one line about them."""
    flops = matmul_flops_per_iteration(model, batch_size)
    num_steps = max(1, math.ceil(args.call_seconds * peak_flops_s / flops))
    label = f"{batch_size}" if model is COURSE_MLP else f"{model.name}, m={batch_size}"
    start = time.perf_counter()
    jax_run, holder = jax_variant(model, batch_size, data, num_steps)
    check_jax_layers(model, holder["state"])
    jax_run.run(1)  # compiles
    compile_s = time.perf_counter() - start
    rate, _ = jax_run.measure(min(args.seconds, 0.5))
    variants = [jax_run]
    line = f"{model.name}, m={batch_size}: K={num_steps}, compile {compile_s:.1f} s, JAX ~{rate:.1f} it/s"
    if torch is not None:
        torch_data = torch.from_numpy(np.asarray(data).reshape(data.shape[0], -1).copy())
        loops = {
            "course": torch_course_loop(torch, model, batch_size, torch_data),
            "tuned": torch_tuned_loop(torch, model, batch_size, torch_data)[0],
        }
        for name, loop in loops.items():
            gen, disc = loop.models  # type: ignore[attr-defined]
            for net, jax_params, torch_net in (("G", holder["state"].g_params, gen), ("D", holder["state"].d_params, disc)):
                count = sum(p.numel() for p in torch_net.parameters())
                if count != _param_count(jax_params):
                    raise AssertionError(f"{model.name} {net}: torch has {count} parameters, JAX {_param_count(jax_params)}")
            for threads in args.thread_choices:  # the variants of one loop share its model and optimiser
                variant = Variant(name, loop, 1, threads=threads)
                torch.set_num_threads(threads)
                loop(3)  # warm-up
                rate, _ = variant.measure(min(args.seconds, 0.5))
                line += f", {variant.key} ~{rate:.1f}"
                variants.append(variant)
    print(line, flush=True)
    return Case(label, model, batch_size, flops, variants, holder, {v.key: [] for v in variants})


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark and prints its report; returns the medians (for tests)."""
    args = parse_args(argv)
    torch, torch_missing = (None, "--no-torch: torch columns skipped") if args.no_torch else import_torch()
    print(f"# benchmark_train: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, python {sys.version.split()[0]}")
    if torch is not None:
        torch.manual_seed(0)
        adam_kind = torch_adam(torch, [torch.zeros(1, requires_grad=True)], COURSE_MLP, tuned=True)[1]
        print(
            f"torch {torch.__version__}; intra-op threads {args.thread_choices}; tuned loop: Adam({adam_kind}=True); "
            "variant@t = with t threads"
        )
    else:
        print(torch_missing)
    print(f"start: {_load()}", flush=True)

    peak, peak_flops = peak_variant(args.peak_size)
    peak.run(1)  # compiles
    peak_estimate = peak.measure(min(args.seconds, 0.5))[0] * peak_flops

    models = [(COURSE_MLP, m) for m in args.batch_sizes] + ([] if args.no_toy else [(TOY_2D, TOY_BATCH_SIZE)])
    mlp_data = jax.random.uniform(jax.random.key(1), (args.num_examples, *COURSE_MLP.data_shape), jnp.float32)
    cases = []
    for model, m in models:
        if model is TOY_2D:
            from bce_gan.data import load_dataset  # noqa: PLC0415

            data = jnp.asarray(load_dataset(model.dataset).x, jnp.float32)
        else:
            data = mlp_data
        cases.append(build_case(model, m, data, torch, args, peak_estimate))

    peak_rates = []
    for repeat in range(args.repeats):
        peak_rates.append(peak.measure(args.seconds)[0] * peak_flops)
        for case in cases:
            shift = repeat % len(case.variants)
            for variant in case.variants[shift:] + case.variants[:shift]:
                if variant.threads is not None:
                    torch.set_num_threads(variant.threads)
                case.samples[variant.key].append(variant.measure(args.seconds))
        print(f"repeat {repeat + 1}/{args.repeats}: peak {peak_rates[-1] / 1e9:.1f} GFLOP/s, {_load()}", flush=True)

    for case in cases:  # the JAX runs trained: their losses are finite
        losses = {k: float(np.asarray(case.jax_holder["metrics"][k])[-1]) for k in ("d_loss", "g_loss")}
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"{case.label}: JAX losses not finite after the benchmark: {losses}")
    return report(cases, peak_rates, torch is not None, args)


def report(cases: list[Case], peak_rates: list[float], with_torch: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Prints the tables; returns ``{"peak_flops": ..., label: {column: median}}``."""
    peak = statistics.median(peak_rates)
    print()
    print(f"float32 matmul peak (jnp.dot {args.peak_size}², median of {len(peak_rates)}): {peak / 1e9:.1f} GFLOP/s")
    print(f"end: {_load()}")
    print()
    results: dict[str, Any] = {"peak_flops": peak}
    best = {case.label: {name: case.best(name) for name in dict.fromkeys(v.name for v in case.variants)} for case in cases}

    def rates(case: Case, name: str) -> list[float]:
        return [rate for rate, _, _ in best[case.label][name]]

    def fraction_of_peak(case: Case, name: str) -> float:
        return statistics.median(r * case.flops / p for r, p in zip(rates(case, name), peak_rates, strict=True))

    header = "| m | JAX it/s | course it/s | tuned it/s | JAX / course | JAX / tuned | JAX % of peak |"
    print(header)
    print("|---" * header.count(" | ") + "|---|")
    for case in cases:
        row = {"JAX": statistics.median(rates(case, "JAX")), "fraction_of_peak": fraction_of_peak(case, "JAX")}
        cells = [case.label, f"{row['JAX']:.1f}"]
        if with_torch:
            for name in ("course", "tuned"):
                row[name] = statistics.median(rates(case, name))
                row[f"JAX/{name}"] = _median_ratio(rates(case, "JAX"), rates(case, name))
            cells += [f"{row['course']:.1f}", f"{row['tuned']:.1f}", f"{row['JAX/course']:.2f}×", f"{row['JAX/tuned']:.2f}×"]
        else:
            cells += ["–"] * 4
        cells.append(f"{100 * row['fraction_of_peak']:.0f}%")
        print("| " + " | ".join(cells) + " |")
        results[case.label] = row
    print()
    torch_note = (
        f" A PyTorch loop's it/s in a repeat is that of its faster thread count ({' or '.join(map(str, args.thread_choices))})."
        if with_torch and len(args.thread_choices) > 1
        else ""
    )
    print(
        f"Medians of {args.repeats} interleaved repeats of ~{args.seconds:g} s per variant; ratios and % of peak are "
        f"medians of per-repeat ratios; matmul FLOPs only (see the docstring).{torch_note}"
    )

    print()
    print(
        "| m | GFLOP / it | JAX K | JAX it/s min–max | course min–max | tuned min–max | faster torch threads "
        "(course; tuned) | cores used JAX / course / tuned | JAX / tuned per CPU-second | tuned % of peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    names = ("JAX", "course", "tuned") if with_torch else ("JAX",)
    for case in cases:
        cells = [case.label, f"{case.flops / 1e9:.3f}", str(case.variants[0].iters_per_unit)]
        for name in ("JAX", "course", "tuned"):
            cells.append(f"{min(rates(case, name)):.1f}–{max(rates(case, name)):.1f}" if name in names else "–")
        if not with_torch:
            cells += ["–", f"{statistics.median(c for _, c, _ in best[case.label]['JAX']):.2f}", "–", "–"]
            print("| " + " | ".join(cells) + " |")
            continue
        won = []
        for name in ("course", "tuned"):
            counts = collections.Counter(t for _, _, t in best[case.label][name])
            won.append(" ".join(f"{t}t×{counts[t]}" for t in args.thread_choices if counts[t]))
        cells.append("; ".join(won))
        cells.append(" / ".join(f"{statistics.median(c for _, c, _ in best[case.label][n]):.2f}" for n in names))
        per_cpu = {n: [r / c for r, c, _ in best[case.label][n]] for n in ("JAX", "tuned")}
        cells.append(f"{_median_ratio(per_cpu['JAX'], per_cpu['tuned']):.2f}×")
        cells.append(f"{100 * fraction_of_peak(case, 'tuned'):.0f}%")
        print("| " + " | ".join(cells) + " |")
    print()
    print(
        "Cores used = the process's CPU time / wall time while a variant ran. With other processes running, a loop "
        "with more threads gets a larger share of the machine; iterations per CPU-second do not depend on that "
        "share (but count time spent spinning)."
    )

    if with_torch:
        print()
        print("Targets (the issue's straightforward JAX version; and ahead of the tuned loop at every m):")
        for case in cases:
            if case.model is not COURSE_MLP or case.batch_size not in ISSUE_RATIOS:
                continue
            row = results[case.label]
            course_target, tuned_target = ISSUE_RATIOS[case.batch_size]
            tuned_target = max(tuned_target, 1.0)
            ok = row["JAX/course"] >= course_target and row["JAX/tuned"] >= tuned_target
            print(
                f"  m={case.batch_size}: vs course {row['JAX/course']:.2f}× (≥ {course_target:.2f}), vs tuned "
                f"{row['JAX/tuned']:.2f}× (> {tuned_target:.2f}): {'met' if ok else 'MISSED'}"
            )
        if "512" in results:
            fraction = results["512"]["fraction_of_peak"]
            print(f"  m=512: {100 * fraction:.0f}% of peak (issue: {100 * ISSUE_PEAK_FRACTION_AT_512:.0f}%)")
    return results


if __name__ == "__main__":
    main()
