"""Reproduce PacGAN's Table 1 (2-D ring and grid): ``python -m experiments.reproduce_pacgan [--quick]``.

Lin et al., "PacGAN: The power of two samples in generative adversarial networks" (NeurIPS 2018),
Table 1: the ring of 8 and the grid of 25 Gaussians, the plain GAN against packing k = 2, 3, 4, over 10
seeds; G 2 -> 4 x [400, BatchNorm, ReLU] -> 2, D 3 maxout layers (200 units x 5 pieces) -> 1, N(0, 0.02)
init, Adam lr 1e-4, beta1 0.8, 2,500 generated samples, VEEGAN's metrics (modes captured, high-quality
samples within 3 std, reverse KL). As in the authors' code (github.com/fjxmlzn/PacGAN, the
``synthetic_data_experiments`` configs): a mini-batch is 100 *packs*, so the discriminator sees m = 100·k
real and 100·k generated points per step, and training runs 400 epochs of 1,000 mini-batches = 400,000
steps. Each (dataset, k) is one population over seeds, trained by the sweep engine (``bce_gan.sweep``).

    python -m experiments.reproduce_pacgan --quick     # published rows only, 2 seeds, 2,000 steps (README: time)
    python -m experiments.reproduce_pacgan             # k = 1..4 on both, 10 seeds, 400,000 steps

The full mode is 8 populations x 10 seeds x 400,000 steps: ~220 hours on a 2-core CPU (measured
throughput ~40 member-steps/s over the four packings); it is meant for an accelerator, where a
population's seeds are vmapped. ``--seeds`` and ``--num-steps`` give anything in between.

Where this differs from the authors' code (see the README): D and G take alternating steps (D, then G on
fresh noise) where theirs update both at once from one batch; real mini-batches are drawn with
replacement from a fixed 100,000-point training set (theirs: shuffled epochs over 100,000 packs); the
2,500 evaluation samples are normalised with their own batch statistics (theirs: BatchNorm's running
averages).

Prints, per row, our mean ± standard error next to the published values, and writes the table to
``<workdir>/results/pacgan_table.md`` and ``.csv`` (default workdir ``runs/reproduce_pacgan[_quick]``).
Rerunning resumes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from bce_gan import io, sweep
from experiments.configs import pacgan_grid, pacgan_ring

# Published (modes, high-quality %, reverse KL), mean ± standard error over 10 seeds.
PUBLISHED = {
    ("ring8", 1): ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)),
    ("ring8", 2): ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)),
    ("grid25", 1): ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07)),
    ("grid25", 4): ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01)),
}
CONFIGS = {"ring8": pacgan_ring.get_config, "grid25": pacgan_grid.get_config}
PACKS_PER_BATCH = 100  # the authors' batch_size: packs of k points each
FULL_STEPS = 400 * 1000  # 400 epochs of 100,000 packs in mini-batches of 100


def _mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def _fmt(mean_se, digits=2) -> str:
    return f"{mean_se[0]:.{digits}f} ± {mean_se[1]:.{digits}f}"


def table(rows_by_config: dict) -> tuple[str, list[dict]]:
    """The Markdown table (ours beside published) and its rows."""
    lines = ["| dataset | D | ours: modes | published | ours: high quality % | published | ours: reverse KL | published | seeds | diverged |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    out = []
    for (dataset, pack), rows in rows_by_config.items():
        modes = _mean_se([r["modes"] for r in rows])
        quality = _mean_se([100 * r["high_quality"] for r in rows])
        rkl = _mean_se([r["reverse_kl"] for r in rows])
        pub = PUBLISHED.get((dataset, pack))
        name = "GAN" if pack == 1 else f"PacGAN{pack}"
        cells = [_fmt(p, 2) if pub else "–" for p in (pub or (None,) * 3)]
        lines.append(f"| {dataset} | {name} | {_fmt(modes, 1)} | {cells[0]} | {_fmt(quality, 1)} | {cells[1]} | "
                     f"{_fmt(rkl, 2)} | {cells[2]} | {len(rows)} | {sum(bool(r['diverged']) for r in rows)} |")
        out.append({"dataset": dataset, "pack": pack, "modes_mean": modes[0], "modes_se": modes[1],
                    "high_quality_mean": quality[0], "high_quality_se": quality[1], "reverse_kl_mean": rkl[0],
                    "reverse_kl_se": rkl[1], "seeds": len(rows)})
    return "\n".join(lines), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce_pacgan", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 4 published rows, 2 seeds, 2,000 steps")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default 10, quick 2)")
    parser.add_argument("--num-steps", type=int, default=None, help="steps per run (default 400,000, quick 2,000)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--datasets", default="ring8,grid25", help="comma list of: ring8, grid25")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 10)
    steps = args.num_steps or (2000 if args.quick else FULL_STEPS)
    workdir = args.workdir or ("runs/reproduce_pacgan_quick" if args.quick else "runs/reproduce_pacgan")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(datasets) - set(CONFIGS))
    if unknown or not datasets:
        print(f"error: --datasets: unknown {unknown}; allowed: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    packs = {d: sorted(k for (ds, k) in PUBLISHED if ds == d) if args.quick else [1, 2, 3, 4] for d in datasets}

    rows_by_config = {}
    for dataset in datasets:
        get_config = CONFIGS[dataset]
        base = dict(get_config(), num_steps=steps, log_every=min(500, steps), checkpoint_every=min(5000, steps))
        # 100 packs per mini-batch: m = 100 k points (the option pairs are swept together)
        grid = {"model_options.pack,batch_size": [(k, PACKS_PER_BATCH * k) for k in packs[dataset]],
                "seed": list(range(seeds))}
        print(f"{dataset}: packing {packs[dataset]} (m = {PACKS_PER_BATCH} packs) x {seeds} seeds, {steps} steps")
        rows = sweep.run_sweep(base, grid, os.path.join(workdir, dataset), progress=not args.no_progress,
                               log=lambda _: None)
        for pack in packs[dataset]:
            rows_by_config[(dataset, pack)] = [r for r in rows if r["pack"] == pack]

    text, out = table(rows_by_config)
    io.write_text(os.path.join(workdir, "results", "pacgan_table.md"), text + "\n")
    from bce_gan import report  # noqa: PLC0415

    report.write_results_csv(os.path.join(workdir, "results", "pacgan_table.csv"), out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
