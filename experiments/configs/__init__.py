"""Experiment configs: one file per experiment, each with ``get_config()`` (a dict of
:class:`bce_gan.train.TrainConfig` options) and, where it is swept, ``get_sweep()`` (lists of values to
sweep over). Each file's docstring gives its run command and runtime."""

import importlib
import pkgutil

PRESETS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def load(name: str):
    """The config module of preset ``name``; ``ValueError`` listing the presets if unknown."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return importlib.import_module(f"{__name__}.{name}")
