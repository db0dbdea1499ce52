"""Command line for the dataset registry.

    python -m bce_gan.data prepare-digits [--data_dir DIR]   # offline, < 1 s; prints the path
    python -m bce_gan.data show NAME [--split test] [--data_dir DIR]   # loads, prints a summary

``show`` on an unprepared TFDS dataset (mnist, fashion_mnist, cifar10) prints the command that
prepares it and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from bce_gan.data import DATASET_NAMES, DatasetNotPreparedError, load_dataset, prepare_digits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bce_gan.data", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare-digits", help="prepare the sklearn_digits TFDS dataset")
    data_dir_help = "TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)"
    prepare.add_argument("--data_dir", default=None, help=data_dir_help)
    show = commands.add_parser("show", help="load a dataset, print its shape, range, settings")
    show.add_argument("name", choices=DATASET_NAMES)
    show.add_argument("--split", default="train")
    show.add_argument("--data_dir", default=None, help=data_dir_help)
    args = parser.parse_args(argv)

    if args.command == "prepare-digits":
        print(prepare_digits(args.data_dir))
        return 0
    try:
        ds = load_dataset(args.name, args.split, data_dir=args.data_dir)
    except DatasetNotPreparedError as e:
        print(e, file=sys.stderr)
        return 2
    info = {k: v for k, v in ds.info.items() if k != "modes"}
    print(
        f"{ds.name}[{ds.split}]: x {ds.x.shape} {ds.x.dtype} "
        f"in [{ds.x.min():.3g}, {ds.x.max():.3g}], value_range={ds.value_range}, "
        f"num_classes={ds.num_classes}, info={json.dumps(info)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
