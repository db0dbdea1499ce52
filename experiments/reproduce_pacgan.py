"""Reproduce PacGAN's Table 1 (2-D ring and grid): ``python -m experiments.reproduce_pacgan [--quick]``.

Lin et al., "PacGAN: The power of two samples in generative adversarial networks" (NeurIPS 2018),
Table 1: the ring of 8 and the grid of 25 Gaussians, the plain GAN against packing k = 2, 3, 4, over 10
seeds; G 2 -> 4 x [400, BatchNorm, ReLU] -> 2, D 3 maxout layers (200 units x 5 pieces) -> 1, N(0, 0.02)
init, Adam lr 1e-4, beta1 0.8, m = 100, 2,500 generated samples, VEEGAN's metrics (modes captured,
high-quality samples within 3 std, reverse KL). Each (dataset, k) is one population over seeds,
trained by the sweep engine (``bce_gan.sweep``).

    python -m experiments.reproduce_pacgan --quick     # published rows only, 2 seeds, 2,000 steps (README: time)
    python -m experiments.reproduce_pacgan             # k = 1..4 on both, 10 seeds, 20,000 steps: estimated ~7 h on 2 cores (~64 member-steps/s)

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
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default 10, quick 3)")
    parser.add_argument("--num-steps", type=int, default=None, help="steps per run (default 20,000, quick 3,000)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--datasets", default="ring8,grid25", help="comma list of: ring8, grid25")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 10)
    steps = args.num_steps or (2000 if args.quick else 20_000)
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
        grid = {"model_options.pack": packs[dataset], "seed": list(range(seeds))}
        print(f"{dataset}: packing {packs[dataset]} x {seeds} seeds, {steps} steps")
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
