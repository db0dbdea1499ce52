"""Command-line flags shared by ``experiments.train`` and ``experiments.sweep``.

Every :class:`bce_gan.train.TrainConfig` option is a flag (``learning_rate`` → ``--learning-rate``);
network and dataset options are ``--model-option KEY=VALUE`` and ``--dataset-option KEY=VALUE``. The
sweep accepts a comma list for any of them. Values are checked before anything compiles.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import types
import typing
from typing import Any

from bce_gan.train import TrainConfig

# Fields that are not flags of their own (set through --model-option / --dataset-option).
_DICT_FIELDS = ("model_options", "dataset_options")
# Fields whose value may hold commas, so a sweep takes it whole (``--mesh members=2,data=4``).
_WHOLE_VALUES = ("mesh", "data_dir")


def _field_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for field in dataclasses.fields(TrainConfig):
        if field.name in _DICT_FIELDS:
            continue
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[field.name] = args[0] if isinstance(hint, types.UnionType) or typing.get_origin(hint) else hint
    return out


FIELD_TYPES = _field_types()


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_scalar(name: str, text: str, kind: type) -> Any:
    """``text`` as a value of type ``kind``; ``ValueError`` naming the flag otherwise."""
    text = text.strip()
    if text.lower() == "none":
        return None
    try:
        if kind is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            value = float(text)
            if not value.is_integer():
                raise ValueError
            return int(value)
        return kind(text)
    except ValueError:
        raise ValueError(f"{flag(name)}: {text!r} is not a valid {kind.__name__}") from None


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE a Python literal (``128``, ``(128,128)``, ``None``) or a bare string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


def add_config_flags(parser: argparse.ArgumentParser, *, lists: bool) -> None:
    """Adds a flag for every TrainConfig option (a comma list of values if ``lists``)."""
    group = parser.add_argument_group("training options" + (" (a value, or a comma list to sweep)" if lists else ""))
    for name, kind in FIELD_TYPES.items():
        if lists and name in ("learning_rate", "batch_size", "seed"):
            continue  # the sweep spells them --learning-rates, --batch-sizes, --seeds
        group.add_argument(flag(name), dest=name, default=None, metavar=kind.__name__.upper(), help=f"{name} ({kind.__name__})")
    group.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE", help="network option, e.g. hidden=(128,128) or pack=2")
    group.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE", help="dataset option, e.g. radius=2.0")


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that join this process to a multi-process (multi-host) run (``bce_gan.distributed``)."""
    group = parser.add_argument_group("multi-process runs (one process per host; or BCE_GAN_* environment variables)")
    group.add_argument("--coordinator-address", default=None, metavar="HOST:PORT", help="process 0's address and a free port")
    group.add_argument("--num-processes", type=int, default=None, metavar="N", help="processes in the run")
    group.add_argument("--process-id", type=int, default=None, metavar="I", help="this process, 0..N-1")
    group.add_argument("--distributed", action="store_true",
                       help="let jax.distributed find the three itself (Cloud TPU, SLURM, Open MPI, Kubernetes)")


def init_distributed(args: argparse.Namespace) -> bool:
    """Starts ``jax.distributed`` if the flags or environment ask for it (before JAX touches a device)."""
    from bce_gan import distributed  # noqa: PLC0415

    return distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                                  auto_detect=args.distributed)


def overrides_from_args(args: argparse.Namespace, *, lists: bool) -> dict[str, Any]:
    """The options given on the command line: values, or lists of values if ``lists``."""
    out: dict[str, Any] = {}
    for name, kind in FIELD_TYPES.items():
        text = getattr(args, name, None)
        if text is None:
            continue
        if lists and name not in _WHOLE_VALUES:
            values = [parse_scalar(name, part, kind) for part in text.split(",") if part.strip()]
            if not values:
                raise ValueError(f"{flag(name)}: empty list")
            out[name] = values if len(values) > 1 else values[0]
        else:
            out[name] = parse_scalar(name, text, kind)
    for dest, field in (("model_option", "model_options"), ("dataset_option", "dataset_options")):
        if getattr(args, dest):
            out[field] = dict(parse_option(text) for text in getattr(args, dest))
    return out


def build_config(preset_config: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The preset's options updated with ``overrides``, validated."""
    values = dict(preset_config)
    for key, value in overrides.items():
        if key in _DICT_FIELDS:
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    if "model" in overrides and overrides["model"] != preset_config.get("model"):
        values["model_options"] = dict(overrides.get("model_options", {}))  # the preset's options were for its model
    return TrainConfig.from_dict(values).validate()
