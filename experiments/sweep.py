"""Sweep learning rate × batch size m × seed: ``python -m experiments.sweep`` (the README's main job).

With no flags: the ``ring8`` preset's sweep: 8 Gaussians (radius 1, std 0.01), the small 2-D GAN,
learning rates {1e-4, 3e-4, 1e-3, 3e-3} × m {32, 64, 128, 256} × 3 seeds, 6,000 steps each: 48 runs in
4 populations (one compiled program per m), a few minutes on a 2-core CPU (the README has the measured
time). Any preset of ``experiments/configs/`` (``--preset``), and any training option as a value or a
comma list to sweep:

    python -m experiments.sweep --learning-rates 1e-3,3e-3 --batch-sizes 64,128 --seeds 2 --num-steps 2000
    python -m experiments.sweep --preset course_digits --workdir runs/sweep_digits
    python -m experiments.sweep --adam-b1 0.5,0.9          # sweep beta1 too

Writes into ``--workdir`` (default ``runs/sweep/<preset>``): ``results.csv``, ``summary.csv``,
``summary.md``, ``heatmap_<metric>.png``, ``curves.png``, ``samples.png``, and one folder per run under
``runs/``; prints the summary table (mean ± std over seeds per lr × m). Rerunning the same command
resumes; a different sweep on the same workdir is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
import time

from experiments import cli, configs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="ring8", help=f"one of: {', '.join(configs.PRESETS)} (default ring8)")
    parser.add_argument("--learning-rates", default=None, help="comma list, e.g. 1e-4,3e-4,1e-3")
    parser.add_argument("--batch-sizes", default=None, help="comma list of m, e.g. 32,64,128")
    parser.add_argument("--seeds", default=None, help="a count (3 = seeds 0,1,2) or a comma list (0,5,9)")
    parser.add_argument("--workdir", default=None, help="output folder (default runs/sweep/<preset>)")
    parser.add_argument("--overwrite", action="store_true", help="delete a different sweep found in --workdir")
    parser.add_argument("--executor", default="auto", choices=("auto", "vmap", "map", "loop"),
                        help="how a population's members run: vmapped, one after another in one program (map), or one "
                        "program called per member (loop)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="populations trained at the same time (default: one per CPU core on CPU, else 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    cli.add_distributed_flags(parser)
    cli.add_config_flags(parser, lists=True)
    return parser.parse_args(argv)


def _seeds(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1:
        count = cli.parse_scalar("seeds", parts[0], int)
        if count is None or count < 1:
            raise ValueError(f"--seeds: {text!r}: give a positive count or a comma list of seeds")
        return list(range(count))
    return [cli.parse_scalar("seeds", p, int) for p in parts]


def sweep_from_args(args: argparse.Namespace) -> tuple[dict, dict]:
    """(base options, grid) from the preset and the flags; ``ValueError`` on a bad value."""
    preset = configs.load(args.preset)
    grid = dict(preset.get_sweep()) if hasattr(preset, "get_sweep") else {}
    overrides = cli.overrides_from_args(args, lists=True)
    if args.learning_rates is not None:
        overrides["learning_rate"] = [cli.parse_scalar("learning_rates", p, float) for p in args.learning_rates.split(",") if p.strip()]
    if args.batch_sizes is not None:
        overrides["batch_size"] = [cli.parse_scalar("batch_sizes", p, int) for p in args.batch_sizes.split(",") if p.strip()]
    if args.seeds is not None:
        overrides["seed"] = _seeds(args.seeds)
    base_overrides = {}
    for key, value in overrides.items():
        if isinstance(value, list):
            if not value:
                raise ValueError(f"{cli.flag(key)}: empty list")
            grid[key] = value
        else:
            grid.pop(key, None)
            base_overrides[key] = value
    base = cli.build_config(preset.get_config(), base_overrides).to_dict()
    for key in grid:
        base.pop(key, None)
    return base, grid


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cli.init_distributed(args)
        base, grid = sweep_from_args(args)
        from bce_gan import sweep  # noqa: PLC0415

        sweep.plan_sweep(base, grid)  # every value checked before anything loads or compiles
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workdir = args.workdir or f"runs/sweep/{args.preset}"
    sizes = ", ".join(f"{k}: {len(v)}" for k, v in grid.items())
    print(f"sweep {args.preset} ({sizes}) -> {workdir}")

    from bce_gan.data import DatasetNotPreparedError  # noqa: PLC0415

    began = time.perf_counter()
    try:
        sweep.run_sweep(base, grid, workdir, overwrite=args.overwrite, executor=args.executor,
                        parallel=args.parallel, progress=not args.no_progress)
    except (DatasetNotPreparedError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wall time {time.perf_counter() - began:.0f} s; files in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
