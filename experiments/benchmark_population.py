"""Population executors against members run one after another: ``python -m experiments.benchmark_population``.

For P members (default 8) of three models, the 2-D GAN of the default sweep (ring8, m 64), PacGAN's 2-D
GAN (m 100) and the course MLP GAN (28x28, m 128, synthetic data), times K training steps of:

* ``solo``: P separate jitted runs, one after another (what a plain loop over configurations does);
* ``vmap``: one program, members vmapped;
* ``map``: one program, members one after another (``jax.lax.map``);
* ``loop``: one solo program (with the population's divergence bookkeeping) called per member;

interleaved in one process, medians of ``--repeats`` after a warm-up (compilation excluded), and prints
the speed-up of each population executor over ``solo`` and the executor ``auto`` picks. About 2 min on
a 2-core CPU with the defaults. The machine's load is printed: other processes skew absolute times,
less so the ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from bce_gan import population, train
from bce_gan.train import TrainConfig

MODELS = {
    "toy": (
        TrainConfig(model_options=dict(hidden=(128, 128), batchnorm=False, maxout_pieces=1, init_std=None), batch_size=64),
        (2,),
    ),
    "pacgan": (
        TrainConfig(model_options=dict(hidden=(400,) * 4, batchnorm=True, maxout_pieces=5, init_std=0.02),
                    batch_size=100, learning_rate=1e-4, adam_b1=0.8),
        (2,),
    ),
    "mlp": (TrainConfig(dataset="mnist", model="mlp", batch_size=128, learning_rate=1e-4), (28, 28, 1)),
}


def _time(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def bench_model(config: TrainConfig, shape, members: int, steps: int, repeats: int) -> dict[str, float]:
    configs = [config.replace(learning_rate=config.learning_rate * (1 + i / 10), seed=i) for i in range(members)]
    data = jax.random.uniform(jax.random.key(0), (4096, *shape))
    gan = train.create_gan(config, shape)
    solo_run = jax.jit(functools.partial(train.train_steps, gan=gan, num_steps=steps))
    solo_states = [train.init_state(gan, train.run_keys(c.seed)[0]) for c in configs]
    train_keys = [train.run_keys(c.seed)[1] for c in configs]
    keys = jnp.stack(train_keys)
    pop_runs = {e: population.make_population_steps(gan, steps, e) for e in ("vmap", "map", "loop")}
    pop_states = {e: population.init_population(gan, configs) for e in pop_runs}

    def solo():  # each run advances, as the population variants do
        out = []
        for i, key in enumerate(train_keys):
            solo_states[i], metrics = solo_run(solo_states[i], data, key)
            out.append(metrics["d_loss"])
        return out

    def pop(executor):
        def run():
            pop_states[executor], metrics = pop_runs[executor](pop_states[executor], data, keys)
            return metrics["d_loss"]

        return run

    variants = {"solo": solo, "vmap": pop("vmap"), "map": pop("map"), "loop": pop("loop")}
    for fn in variants.values():  # warm-up: compile
        _time(fn)
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_time(fn))
    return {name: float(np.median(t)) for name, t in times.items()} | {"auto": population.choose_executor(gan)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed call (K)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of: toy (the 2-D GAN of the default "
                        "sweep, m 64), pacgan (PacGAN's 2-D GAN, m 100), mlp (the course MLP GAN, m 128)")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform} x{len(jax.devices())}, load {os.getloadavg()}")
    print(f"{args.members} members, {args.steps} steps per call, median of {args.repeats}\n")
    print("| model | solo (s) | vmap (s) | map (s) | loop (s) | vmap speed-up | map speed-up | loop speed-up | auto picks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.models.split(","):
        config, shape = MODELS[name.strip()]
        t = bench_model(config, shape, args.members, args.steps, args.repeats)
        print(f"| {name} | {t['solo']:.3f} | {t['vmap']:.3f} | {t['map']:.3f} | {t['loop']:.3f} | "
              f"{t['solo'] / t['vmap']:.2f}x | {t['solo'] / t['map']:.2f}x | {t['solo'] / t['loop']:.2f}x | {t['auto']} |")
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
