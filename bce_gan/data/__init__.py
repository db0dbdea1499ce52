"""Datasets in memory: 2-D Gaussian mixtures, scikit-learn's digits and TFDS image datasets.

    >>> from bce_gan.data import load_dataset
    >>> ds = load_dataset("ring8")                          # 100,000 x 2 points, 8 modes
    >>> ds = load_dataset("mnist", value_range=(-1, 1))     # needs mnist prepared in TFDS

See :mod:`bce_gan.data.registry` for the table of datasets. Importing this package is cheap: it
imports neither ``tensorflow_datasets`` (loaded on first use of a TFDS dataset) nor TensorFlow
(never needed; only *preparing* mnist, fashion_mnist or cifar10 needs it, once).

Command line: ``python -m bce_gan.data --help``.
"""

from bce_gan.data.mixtures import sample_mixture
from bce_gan.data.registry import (
    DATASET_NAMES,
    MIXTURE_NAMES,
    SPLITS,
    Dataset,
    clear_cache,
    load_dataset,
    mixture_modes,
    prepare_digits,
)
from bce_gan.data.tfds_source import DatasetNotPreparedError, default_data_dir, prepare_command

__all__ = [
    "DATASET_NAMES",
    "MIXTURE_NAMES",
    "SPLITS",
    "Dataset",
    "DatasetNotPreparedError",
    "clear_cache",
    "default_data_dir",
    "load_dataset",
    "mixture_modes",
    "prepare_command",
    "prepare_digits",
    "sample_mixture",
]
