"""2-D Gaussian mixtures: ``ring8`` and ``grid25`` in the PacGAN setting, sampled with JAX.

* ``ring8``: 8 modes at angles 2πk/8 on a circle of radius ``radius`` (default 1.0),
  standard deviation ``std`` (default 0.01).
* ``grid25``: 25 modes at ``spacing * {-2, -1, 0, 1, 2}²`` (default spacing 2.0, so
  {−4, −2, 0, 2, 4}²), standard deviation ``std`` (default 0.05).

Each sample picks its mode uniformly, then adds isotropic Gaussian noise. Samples are a pure
function of ``(seed, split, num_samples, geometry)``: the split's stream is
``fold_in(key(seed), split_index)`` so train and test never share numbers.

This module needs jax and numpy only.

References:
    Lin et al., 2018. PacGAN: The power of two samples in generative adversarial networks.
    https://arxiv.org/abs/1712.04086
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MIXTURE_DEFAULTS", "MIXTURE_SPLITS", "mixture_settings", "modes_for", "sample_mixture"]

# The split's index is folded into the key: the streams are fixed forever by this table.
MIXTURE_SPLITS = {"train": 0, "test": 1}

# Defaults per mixture (PacGAN). `num_samples` may also be None: then it depends on the split.
MIXTURE_DEFAULTS: dict[str, dict[str, float | int | None]] = {
    "ring8": {"radius": 1.0, "std": 0.01, "num_samples": None, "seed": 0},
    "grid25": {"spacing": 2.0, "std": 0.05, "num_samples": None, "seed": 0},
}
DEFAULT_NUM_SAMPLES = {"train": 100_000, "test": 2_500}


def mixture_settings(name: str, split: str | None, options: dict) -> dict:
    """Validated settings of mixture ``name``: the defaults overridden by ``options``.

    Args:
        name: ``"ring8"`` or ``"grid25"``.
        split: ``"train"`` or ``"test"`` (fills in the default ``num_samples``), or None to
            leave ``num_samples`` as given.
        options: user options; every key must be one of ``MIXTURE_DEFAULTS[name]``.

    Returns:
        A dict of plain Python numbers: the geometry (``radius`` or ``spacing``), ``std``,
        ``num_samples`` and ``seed``.

    Raises:
        ValueError: for an unknown option or an invalid value.
    """
    defaults = MIXTURE_DEFAULTS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for dataset {name!r}; allowed: {sorted(defaults)}"
        )
    settings = {**defaults, **options}
    for key in ("radius", "spacing", "std"):
        if key in settings:
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ValueError(f"option {key}={value!r} for {name!r} must be a positive number")
            settings[key] = float(value)
    if settings["num_samples"] is None and split is not None:
        settings["num_samples"] = DEFAULT_NUM_SAMPLES[split]
    for key, minimum in (("num_samples", 1), ("seed", 0)):
        value = settings[key]
        if value is None and key == "num_samples":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"option {key}={value!r} for {name!r} must be an integer >= {minimum}")
        settings[key] = int(value)
    return settings


def modes_for(name: str, settings: dict) -> np.ndarray:
    """The true modes of mixture ``name``: a ``[K, 2]`` float32 array (K = 8 or 25).

    ``ring8`` mode k sits at ``radius * (cos 2πk/8, sin 2πk/8)``; ``grid25`` mode ``5i + j``
    at ``spacing * (i - 2, j - 2)``.
    """
    if name == "ring8":
        angles = 2.0 * np.pi * np.arange(8) / 8
        modes = settings["radius"] * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        modes[np.abs(modes) < 1e-12] = 0.0  # cos(π/2) is 6e-17: store an exact 0
    elif name == "grid25":
        axis = settings["spacing"] * (np.arange(5) - 2.0)
        modes = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(25, 2)
    else:
        raise ValueError(f"{name!r} is not a mixture; mixtures: {sorted(MIXTURE_DEFAULTS)}")
    return modes.astype(np.float32)


@functools.partial(jax.jit, static_argnames="num_samples")
def _sample(key: jax.Array, modes_Kx2: jax.Array, std: jax.Array, num_samples: int):
    mode_key, noise_key = jax.random.split(key)
    labels_N = jax.random.randint(mode_key, (num_samples,), 0, modes_Kx2.shape[0])
    noise_Nx2 = jax.random.normal(noise_key, (num_samples, 2), jnp.float32)
    return modes_Kx2[labels_N] + std * noise_Nx2, labels_N


def sample_mixture(
    modes_Kx2: np.ndarray, *, std: float, num_samples: int, seed: int, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``num_samples`` points from the mixture with the given modes.

    Args:
        modes_Kx2: ``[K, 2]`` mode centres.
        std: standard deviation of each (isotropic) component.
        num_samples: number of points n.
        seed: the base seed; the stream is ``fold_in(key(seed), MIXTURE_SPLITS[split])``.
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(x, labels)``: ``[n, 2]`` float32 points and ``[n]`` int32 index of each point's mode.
    """
    key = jax.random.fold_in(jax.random.key(seed), MIXTURE_SPLITS[split])
    x_Nx2, labels_N = _sample(
        key, jnp.asarray(modes_Kx2, jnp.float32), jnp.float32(std), num_samples=num_samples
    )
    return np.asarray(x_Nx2, np.float32), np.asarray(labels_N, np.int32)
