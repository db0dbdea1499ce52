"""Train one GAN: ``python -m experiments.train [--preset NAME] [--option VALUE ...]``.

With no flags: the ``ring8`` preset (8 Gaussians, the small 2-D GAN, lr 1e-3, m 64, 6,000 steps), about
20 s on a 2-core laptop CPU. Presets live in ``experiments/configs/`` (``--list-presets``); every
option of :class:`bce_gan.train.TrainConfig` is a flag, e.g.

    python -m experiments.train --preset course_digits --learning-rate 1e-4 --num-steps 2000
    python -m experiments.train --dataset grid25 --model toy --model-option pack=4 --batch-size 100

Writes into ``--workdir`` (default ``runs/train/<preset>``): ``config.json``, ``metrics.jsonl``,
TensorBoard events ``tb/``, sample pictures ``samples_<step>.png``, ``samples.npy``, ``final.json`` and
``checkpoints/``. Re-running on the same workdir resumes from the last checkpoint. Bad options fail
before anything compiles, naming the option and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from experiments import cli, configs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.train", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="ring8", help=f"one of: {', '.join(configs.PRESETS)} (default ring8)")
    parser.add_argument("--workdir", default=None, help="output folder (default runs/train/<preset>)")
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    cli.add_distributed_flags(parser)
    cli.add_config_flags(parser, lists=False)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_presets:
        for name in configs.PRESETS:
            print(f"{name:16s} {configs.load(name).__doc__.strip().splitlines()[0]}")
        return 0
    try:
        cli.init_distributed(args)
        preset = configs.load(args.preset)
        config = cli.build_config(preset.get_config(), cli.overrides_from_args(args, lists=False))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workdir = args.workdir or os.path.join("runs", "train", args.preset)
    print(f"training {config.model} on {config.dataset}: lr {config.learning_rate:g}, m {config.batch_size}, "
          f"{config.num_steps} steps, seed {config.seed} -> {workdir}")

    from bce_gan.data import DatasetNotPreparedError  # noqa: PLC0415
    from bce_gan.train import TrainingDiverged, train_and_evaluate  # noqa: PLC0415

    try:
        final = train_and_evaluate(config, workdir, progress=True)
    except (DatasetNotPreparedError, TrainingDiverged, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(final, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
