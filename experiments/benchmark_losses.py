"""Time bce_gan's BCE losses against optax (and torch, if installed) on this machine's CPU.

Run:

    python -m experiments.benchmark_losses                 # n = 10^7 float32 elements, 20 repeats
    python -m experiments.benchmark_losses --n 1000 --repeats 2   # a smoke run (seconds)

Runtime: about 1 minute with the defaults on a 2-core laptop CPU (most of it compiling and
warming up); writes nothing, prints a table.

What is timed, each jitted and fed device arrays of ``--n`` float32 elements:

* ``bce_with_logits(x, y)`` (mean) against ``optax.sigmoid_binary_cross_entropy(x, y).mean()``
  and, if torch is importable, ``torch.nn.functional.binary_cross_entropy_with_logits``;
* ``bce(p, y)`` (mean) against the plain formula ``-(y log p + (1-y) log1p(-p)).mean()`` (what one
  writes by hand; optax has no probability form, and optax on logit(p) would time a different
  computation) and, if torch is importable, ``torch.nn.functional.binary_cross_entropy``;
* each forward only (``fwd``) and forward plus the gradient of the mean with respect to the input
  (``fwd+bwd``: ``jax.value_and_grad``; torch: ``loss.backward()``);
* ``x.sum()`` measured the same way, as the memory-bandwidth reference.

Method: every variant is compiled and warmed up first; then ``--repeats`` rounds run all variants
round-robin in one process (the order rotates every round, so drift and caches hit all variants
alike), each call timed to ``block_until_ready``. The table gives the median, the 10th-90th
percentile spread, the speedup of the baseline's median over the variant's (baseline: optax for
logits, the plain formula for probabilities), and the achieved bandwidth: bytes read (inputs and
labels) plus, for ``fwd+bwd``, the gradient written, over the median time. The load average is
printed before and after: with other work on the machine the ratios are not to be trusted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bce_gan.losses import bce, bce_with_logits

# Targets for bce_gan.losses on CPU (speedup over the baseline's median time).
TARGETS = {("logits", "fwd"): 3.0, ("logits", "fwd+bwd"): 2.0}


@dataclasses.dataclass
class Variant:
    name: str
    group: str  # "logits", "probs" or "reference"
    mode: str  # "fwd" or "fwd+bwd"
    fn: Callable[[], Any]  # runs once and blocks until the result is ready
    bytes_moved: int
    is_baseline: bool = False
    times: list[float] = dataclasses.field(default_factory=list)


def _jax_call(fn, *args) -> Callable[[], Any]:
    def call():
        return jax.block_until_ready(fn(*args))

    return call


def _plain_bce(p, y):
    return -(y * jnp.log(p) + (1 - y) * jnp.log1p(-p)).mean()


def _optax_bce(x, y):
    import optax

    return optax.sigmoid_binary_cross_entropy(x, y).mean()


def jax_variants(x, y, p) -> list[Variant]:
    n = x.size
    itemsize = x.dtype.itemsize
    read = 2 * n * itemsize  # inputs + labels
    written = n * itemsize  # the gradient
    variants = [Variant("x.sum() (bandwidth reference)", "reference", "fwd",
                        _jax_call(jax.jit(jnp.sum), x), n * itemsize)]
    for group, inputs, ours, ours_name, base, base_name in (
        ("logits", x, bce_with_logits, "bce_with_logits", _optax_bce, "optax"),
        ("probs", p, bce, "bce", _plain_bce, "plain formula"),
    ):
        for fn, name, is_baseline in ((ours, ours_name, False), (base, base_name, True)):
            variants.append(Variant(name, group, "fwd", _jax_call(jax.jit(fn), inputs, y), read,
                                    is_baseline))
            variants.append(Variant(name, group, "fwd+bwd",
                                    _jax_call(jax.jit(jax.value_and_grad(fn)), inputs, y),
                                    read + written, is_baseline))
    return variants


def torch_variants(x_np, y_np, p_np) -> list[Variant]:
    """torch's versions of both losses, or [] if torch is not installed."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return []
    n = x_np.size
    read, written = 2 * n * x_np.itemsize, n * x_np.itemsize
    x_t, y_t, p_t = (torch.from_numpy(a) for a in (x_np, y_np, p_np))

    def fwd(loss_fn, inputs):
        def call():
            with torch.no_grad():
                return loss_fn(inputs, y_t).item()

        return call

    def fwd_bwd(loss_fn, inputs):
        leaf = inputs.clone().requires_grad_(True)

        def call():
            leaf.grad = None
            loss = loss_fn(leaf, y_t)
            loss.backward()
            return loss.item(), leaf.grad

        return call

    name = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    out = []
    for group, loss_fn, inputs in (("logits", F.binary_cross_entropy_with_logits, x_t),
                                   ("probs", F.binary_cross_entropy, p_t)):
        out.append(Variant(name, group, "fwd", fwd(loss_fn, inputs), read))
        out.append(Variant(name, group, "fwd+bwd", fwd_bwd(loss_fn, inputs), read + written))
    return out


def run(variants: list[Variant], repeats: int, warmup: int) -> None:
    """Warms every variant up, then times ``repeats`` interleaved rounds."""
    for v in variants:
        for _ in range(warmup):
            v.fn()
    for r in range(repeats):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:  # rotate the order every round
            start = time.perf_counter()
            v.fn()
            v.times.append(time.perf_counter() - start)


def format_table(variants: list[Variant]) -> list[str]:
    baselines = {(v.group, v.mode): v for v in variants if v.is_baseline}
    header = (f"{'variant':<44} {'mode':<8} {'median ms':>10} {'p10-p90 ms':>17} "
              f"{'speedup':>8} {'GB/s':>7}")
    lines = [header, "-" * len(header)]
    groups, modes = ("reference", "logits", "probs"), ("fwd", "fwd+bwd")
    for v in sorted(variants, key=lambda v: (groups.index(v.group), modes.index(v.mode))):
        t = np.asarray(v.times)
        median = float(np.median(t))
        p10, p90 = np.percentile(t, [10, 90]) * 1e3
        base = baselines.get((v.group, v.mode))
        speedup = "-" if base is None else f"{float(np.median(base.times)) / median:.2f}x"
        label = f"{v.group}: {v.name}" if v.group != "reference" else v.name
        lines.append(f"{label:<44} {v.mode:<8} {median * 1e3:10.3f} {p10:8.3f}-{p90:<8.3f} "
                     f"{speedup:>8} {v.bytes_moved / median / 1e9:7.2f}")
    return lines


def ratio_lines(variants: list[Variant]) -> list[str]:
    """One line per (group, mode): baseline median over bce_gan's median, with the target if any."""
    lines = []
    for group, ours, base in (("logits", "bce_with_logits", "optax"),
                              ("probs", "bce", "plain formula")):
        for mode in ("fwd", "fwd+bwd"):
            (v,) = [v for v in variants if v.group == group and v.mode == mode and v.name == ours]
            (b,) = [b for b in variants if b.group == group and b.mode == mode and b.name == base]
            ratio = float(np.median(b.times) / np.median(v.times))
            target = TARGETS.get((group, mode))
            verdict = ""
            if target is not None:
                verdict = f"  (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})"
            lines.append(f"ratio {ours} {mode}: {base} / {ours} = {ratio:.2f}x{verdict}")
    return lines


def main(argv: list[str] | None = None) -> list[Variant]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10**7, help="elements per array (float32)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds over all variants")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per variant first")
    parser.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    rng = np.random.default_rng(args.seed)
    x_np = (3.0 * rng.standard_normal(args.n)).astype(np.float32)
    y_np = (rng.random(args.n) < 0.5).astype(np.float32)
    p_np = (1.0 / (1.0 + np.exp(-x_np.astype(np.float64)))).astype(np.float32)
    x, y, p = (jax.device_put(a) for a in (x_np, y_np, p_np))

    variants = jax_variants(x, y, p)
    if not args.no_torch:
        torch_vs = torch_variants(x_np, y_np, p_np)
        if not torch_vs:
            print("torch is not installed: skipping its column")
        variants += torch_vs

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"n = {args.n:,} float32 elements, {args.warmup} warm-up calls, "
          f"{args.repeats} interleaved rounds over {len(variants)} variants")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}")
    run(variants, args.repeats, args.warmup)
    load_after = os.getloadavg()
    print()
    print("\n".join(format_table(variants)))
    print()
    print("\n".join(ratio_lines(variants)))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in load_after)}")
    if max(load_before[0], load_after[0]) > 0.5 * (os.cpu_count() or 1) + 0.5:
        print("warning: the machine was busy; timings and ratios are noisy")
    return variants


if __name__ == "__main__":
    main()
