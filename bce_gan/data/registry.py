"""The dataset registry: a name -> a :class:`Dataset` of NumPy arrays in memory.

* ``ring8``: 2-D, 8 modes on a circle; ``grid25``: 2-D, 25 modes on a 5 x 5 grid. Gaussian
  mixtures sampled with JAX in the PacGAN setting (see :mod:`bce_gan.data.mixtures`); shape
  ``(2,)``, labels = the index of each sample's mode.
* ``digits``: scikit-learn's 8 x 8 digits, shape ``(8, 8, 1)``, 10 classes, 1,497 train / 300
  test, through the embedded TFDS builder ``sklearn_digits`` (prepared offline on first use;
  see :mod:`bce_gan.data.digits`).
* ``mnist``, ``fashion_mnist`` (``(28, 28, 1)``) and ``cifar10`` (``(32, 32, 3)``), 10 classes:
  TFDS datasets read with ``tfds.data_source`` from array_record files that must have been
  prepared beforehand (:class:`DatasetNotPreparedError` says how).

All have the splits ``train`` and ``test``; image splits also accept TFDS slices
(``"train[:90%]"``, ``"train[-5000:]"``). Images are float32 rescaled to ``value_range``; mixtures
keep raw coordinates. Loading the same arrays twice in a process reuses them (see
:func:`clear_cache`); the caller always gets arrays of its own.

Importing this module does not import ``tensorflow_datasets`` (nor TensorFlow, ever).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re

import numpy as np

from bce_gan.data import mixtures
from bce_gan.data.tfds_source import clear_tfds_cache, default_data_dir, read_tfds

__all__ = [
    "DATASET_NAMES",
    "MIXTURE_NAMES",
    "SPLITS",
    "Dataset",
    "clear_cache",
    "load_dataset",
    "mixture_modes",
    "prepare_digits",
]

DATASET_NAMES = ("ring8", "grid25", "digits", "mnist", "fashion_mnist", "cifar10")
MIXTURE_NAMES = ("ring8", "grid25")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class _ImageSpec:
    tfds_name: str
    shape: tuple[int, ...]
    num_classes: int
    pixel_max: int  # raw pixels are integers 0..pixel_max


_IMAGES = {
    "digits": _ImageSpec("sklearn_digits", (8, 8, 1), 10, 16),
    "mnist": _ImageSpec("mnist", (28, 28, 1), 10, 255),
    "fashion_mnist": _ImageSpec("fashion_mnist", (28, 28, 1), 10, 255),
    "cifar10": _ImageSpec("cifar10", (32, 32, 3), 10, 255),
}

_IMAGE_SPLIT = re.compile(r"^(train|test)(\[[^\[\]]*\])?$")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a dataset, in memory.

    Attributes:
        name: the registry name, e.g. ``"mnist"``.
        split: the split as requested, e.g. ``"train"`` or ``"train[:90%]"``.
        x: ``[n, *shape]`` float32; images already in ``value_range``, 2-D data raw coordinates.
        labels: ``[n]`` int32 class labels (mixtures: the index of each sample's mode), or None.
        shape: one example's shape, e.g. ``(28, 28, 1)``, ``(8, 8, 1)``, ``(2,)``.
        value_range: ``(low, high)`` of the image pixels; None for 2-D data.
        num_classes: images: number of classes; mixtures: number of modes.
        info: JSON-serialisable settings. Mixtures: ``modes`` (``[[x, y], ...]``), ``std``,
            ``radius`` or ``spacing``, ``num_samples``, ``seed``. TFDS datasets: ``tfds_name``,
            ``data_dir``, ``pixel_max``.
    """

    name: str
    split: str
    x: np.ndarray = dataclasses.field(repr=False)
    labels: np.ndarray | None = dataclasses.field(repr=False)
    shape: tuple[int, ...]
    value_range: tuple[float, float] | None
    num_classes: int | None
    info: dict = dataclasses.field(repr=False)

    def __len__(self) -> int:
        return len(self.x)


def _unknown_name(name) -> ValueError:
    return ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")


def _check_split(name: str, split, *, allow_slices: bool) -> None:
    ok = isinstance(split, str) and (
        _IMAGE_SPLIT.match(split) if allow_slices else split in SPLITS
    )
    if not ok:
        slices = " (or a TFDS slice of one, e.g. 'train[:90%]')" if allow_slices else ""
        raise ValueError(
            f"unknown split {split!r} for dataset {name!r}; allowed: "
            f"{', '.join(repr(s) for s in SPLITS)}{slices}"
        )


def _check_value_range(name: str, value_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range for image dataset {name!r} must be a pair (low, high), "
            f"e.g. (0.0, 1.0) or (-1.0, 1.0); got {value_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"value_range must be finite with low < high; got {value_range!r}")
    return low, high


@functools.lru_cache(maxsize=16)
def _mixture_arrays(name: str, split: str, settings_items: tuple) -> tuple[np.ndarray, np.ndarray]:
    settings = dict(settings_items)
    modes_Kx2 = mixtures.modes_for(name, settings)
    return mixtures.sample_mixture(
        modes_Kx2,
        std=settings["std"],
        num_samples=settings["num_samples"],
        seed=settings["seed"],
        split=split,
    )


def _load_mixture(name: str, split: str, options: dict) -> Dataset:
    _check_split(name, split, allow_slices=False)
    settings = mixtures.mixture_settings(name, split, options)
    modes_Kx2 = mixtures.modes_for(name, settings)
    x, labels = _mixture_arrays(name, split, tuple(sorted(settings.items())))
    return Dataset(
        name=name,
        split=split,
        x=x.copy(),
        labels=labels.copy(),
        shape=(2,),
        value_range=None,
        num_classes=len(modes_Kx2),
        info={"modes": modes_Kx2.tolist(), **settings},
    )


def _load_images(name: str, split: str, value_range, data_dir, options: dict) -> Dataset:
    spec = _IMAGES[name]
    if options:
        raise ValueError(
            f"unknown option(s) {sorted(options)} for dataset {name!r}: it takes none besides "
            "value_range and data_dir (options exist for "
            + "; ".join(f"{m}: {sorted(mixtures.MIXTURE_DEFAULTS[m])}" for m in MIXTURE_NAMES)
            + ")"
        )
    _check_split(name, split, allow_slices=True)
    low, high = _check_value_range(name, value_range)
    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir else default_data_dir()

    order_key = None
    if name == "digits":
        prepare_digits(data_dir)
        order_key = "index"
    images, labels = read_tfds(
        spec.tfds_name, split, data_dir, image_shape=spec.shape, order_key=order_key
    )

    # x = low + (high - low) * p / pixel_max, in place to keep the peak memory at one copy.
    x = images.astype(np.float32)
    x *= np.float32(1.0 / spec.pixel_max)
    x *= np.float32(high - low)
    x += np.float32(low)
    np.clip(x, np.float32(low), np.float32(high), out=x)
    return Dataset(
        name=name,
        split=split,
        x=x,
        labels=labels.copy(),
        shape=spec.shape,
        value_range=(low, high),
        num_classes=spec.num_classes,
        info={"tfds_name": spec.tfds_name, "data_dir": data_dir, "pixel_max": spec.pixel_max},
    )


def load_dataset(
    name: str,
    split: str = "train",
    *,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    data_dir: str | None = None,
    **options,
) -> Dataset:
    """Loads one split of a registered dataset into memory.

    Args:
        name: one of :data:`DATASET_NAMES`.
        split: ``"train"`` or ``"test"``; image datasets also take TFDS slices
            (``"train[:90%]"``).
        value_range: ``(low, high)`` the image pixels are rescaled to (linearly, from
            ``[0, pixel_max]``); ignored by the 2-D mixtures (recorded as None).
        data_dir: the TFDS data dir of the image datasets; default ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``. ``digits`` are prepared there on first use (offline).
            Ignored by the mixtures.
        **options: mixture settings: ``num_samples`` (default 100,000 for train, 2,500 for
            test), ``seed`` (default 0), ``std`` (ring8 0.01, grid25 0.05), ``radius`` (ring8,
            1.0) or ``spacing`` (grid25, 2.0). Image datasets take none.

    Returns:
        A :class:`Dataset`; its arrays belong to the caller.

    Raises:
        ValueError: unknown name, split or option, or an invalid value.
        DatasetNotPreparedError: a TFDS dataset (mnist, fashion_mnist, cifar10) is not
            prepared in ``data_dir``; the message gives the command that prepares it.
    """
    if not isinstance(name, str) or name not in DATASET_NAMES:
        raise _unknown_name(name)
    if name in MIXTURE_NAMES:
        return _load_mixture(name, split, options)
    return _load_images(name, split, value_range, data_dir, options)


def mixture_modes(name: str, **options) -> np.ndarray:
    """The true modes of a 2-D mixture, for metrics and plots.

    Args:
        name: ``"ring8"`` or ``"grid25"``.
        **options: the same options as :func:`load_dataset` (only ``radius`` / ``spacing``
            change the modes).

    Returns:
        ``[K, 2]`` float32 mode centres (K = 8 or 25), in the order of the mixture's labels.
    """
    if name not in MIXTURE_NAMES:
        if name in DATASET_NAMES:
            raise ValueError(f"dataset {name!r} has no modes; mixtures: {', '.join(MIXTURE_NAMES)}")
        raise _unknown_name(name)
    return mixtures.modes_for(name, mixtures.mixture_settings(name, None, options))


def prepare_digits(data_dir: str | None = None) -> str:
    """Prepares the embedded ``sklearn_digits`` TFDS dataset (offline) if needed.

    Args:
        data_dir: the TFDS data dir; default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.

    Returns:
        The prepared dataset's directory, ``<data_dir>/sklearn_digits/1.0.0``.
    """
    from bce_gan.data import digits  # imports tensorflow_datasets

    return digits.prepare_digits(data_dir)


def clear_cache() -> None:
    """Forgets the arrays kept for reuse (mixtures and TFDS datasets read from disk)."""
    _mixture_arrays.cache_clear()
    clear_tfds_cache()
