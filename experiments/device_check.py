"""What this machine's accelerator does for bce_gan: ``python -m experiments.device_check``.

Prints ``jax.devices()``, the backend and the jax / jaxlib versions; runs a short sweep (the ``ring8``
preset: learning rates {1e-3, 3e-3} × m {64, 256} × 1 seed, 1,000 steps, 2 populations) and measures
training throughput: steps/s of :func:`bce_gan.train.train_steps` for the course MLP GAN (28×28×1,
synthetic uniform data, no download) at m = 128 and 512, the median of ``--repeats`` calls of ``--steps``
steps each after a warm-up call, with ``block_until_ready``.

Writes a JSON record (atomically) to ``--out`` (default ``runs/device_check/<device_kind>.json``): device
kind, platform, device count, jax / jaxlib versions, steps/s per m, the sweep's wall time and its
settings, and the date. The sweep's files go into ``--workdir`` (default: a temporary folder, deleted).

Runtime: 1 min 49 s on the shared 2-core CPU with the defaults (37 steps/s at m=128, 13 at m=512; sweep 24 s).
Smaller (the smoke test, ~20 s):

    python -m experiments.device_check --steps 10 --repeats 2 --batch-sizes 32 --sweep-steps 20
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import jax

from bce_gan import io, train
from bce_gan.train import TrainConfig

COURSE_MLP_SHAPE = (28, 28, 1)


def course_mlp_config(batch_size: int) -> TrainConfig:
    """The course MLP GAN (the ``mlp`` model's defaults; lr 1e-5, Adam betas (0.9, 0.999)) at m."""
    return TrainConfig(dataset="mnist", model="mlp", batch_size=batch_size, learning_rate=1e-5).validate()


def steps_per_second(batch_size: int, *, steps: int, repeats: int, num_examples: int) -> float:
    """Median steps/s of ``repeats`` jitted calls of ``steps`` train steps (after one warm-up call)."""
    config = course_mlp_config(batch_size)
    gan = train.create_gan(config, COURSE_MLP_SHAPE)
    init_key, train_key, _ = train.run_keys(config.seed)
    data = jax.random.uniform(jax.random.key(1), (num_examples, *COURSE_MLP_SHAPE))
    state = jax.jit(functools.partial(train.init_state, gan))(init_key)
    run = train.compile_train_steps(gan, steps)
    state, metrics = run(state, data, train_key)  # compile and warm up
    jax.block_until_ready((state, metrics))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, metrics = run(state, data, train_key)
        jax.block_until_ready((state, metrics))
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates)


def run_short_sweep(workdir: str, *, learning_rates: Sequence[float], batch_sizes: Sequence[int], num_steps: int) -> float:
    """Wall time (s) of the ring8 sweep ``learning_rates`` × ``batch_sizes`` × seed 0 in ``workdir``."""
    from bce_gan import sweep  # noqa: PLC0415
    from experiments.configs import ring8  # noqa: PLC0415

    base = dict(ring8.get_config(), num_steps=num_steps, log_every=max(1, min(200, num_steps)),
                checkpoint_every=0, num_samples=500)
    grid = {"learning_rate": list(learning_rates), "batch_size": list(batch_sizes), "seed": [0]}
    start = time.perf_counter()
    sweep.run_sweep(base, grid, workdir, progress=False, log=lambda _: None)
    return time.perf_counter() - start


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.device_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="JSON record (default runs/device_check/<device_kind>.json)")
    parser.add_argument("--workdir", default=None, help="the sweep's folder (default: a temporary one, deleted); a finished sweep there is read, not timed again")
    parser.add_argument("--batch-sizes", default="128,512", help="m of the course MLP GAN for steps/s, comma list")
    parser.add_argument("--steps", type=int, default=100, help="train steps per timed call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per m (the median is kept)")
    parser.add_argument("--num-examples", type=int, default=2048, help="synthetic images to draw batches from")
    parser.add_argument("--sweep-steps", type=int, default=1000, help="steps per sweep run (0: no sweep)")
    parser.add_argument("--sweep-learning-rates", default="1e-3,3e-3", help="comma list")
    parser.add_argument("--sweep-batch-sizes", default="64,256", help="comma list of m")
    return parser.parse_args(argv)


def device_kind() -> str:
    """The first device's kind as a file name, e.g. ``cpu`` or ``NVIDIA_H200``."""
    kind = jax.devices()[0].device_kind
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in kind)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import jaxlib  # noqa: PLC0415

    devices = jax.devices()
    print(f"devices: {devices}")
    print(f"backend: {jax.default_backend()}; jax {jax.__version__}, jaxlib {jaxlib.__version__}; "
          f"python {platform.python_version()} on {platform.machine()}")
    record: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device_kind": devices[0].device_kind,
        "platform": devices[0].platform,
        "device_count": len(devices),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "steps_per_call": args.steps,
        "repeats": args.repeats,
        "steps_per_s": {},
    }
    for m in _ints(args.batch_sizes):
        rate = steps_per_second(m, steps=args.steps, repeats=args.repeats, num_examples=args.num_examples)
        record["steps_per_s"][str(m)] = round(rate, 2)
        print(f"course MLP GAN, m={m}: {rate:.1f} steps/s ({rate * m:.0f} examples/s)")

    if args.sweep_steps > 0:
        settings = dict(learning_rates=_floats(args.sweep_learning_rates), batch_sizes=_ints(args.sweep_batch_sizes),
                        num_steps=args.sweep_steps)
        with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
            wall = run_short_sweep(args.workdir or tmp, **settings)
        record["sweep"] = dict(settings, preset="ring8", seeds=1, wall_time_s=round(wall, 2))
        print(f"ring8 sweep {settings}: {wall:.1f} s")

    out = args.out or os.path.join("runs", "device_check", f"{device_kind()}.json")
    io.write_json(out, record)
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
    sys.exit(0)
