"""scikit-learn's 8×8 handwritten digits as a real TFDS builder, prepared offline.

The 1,797 images bundled with scikit-learn (``sklearn.datasets.load_digits``: the UCI
"optdigits" test set, pixels 0..16) are written by :class:`SklearnDigits`, a
``tfds.core.GeneratorBasedBuilder`` with ``Tensor`` features, into array_record files, so the
whole TFDS path (prepare, ``tfds.data_source``, random access) runs without TensorFlow and
without the network.

Splits (deterministic, the same on every machine and library version): ``test`` holds the 300
images whose index in scikit-learn's order is a multiple of 6 (0, 6, ..., 1794; 25 to 33 per
class); ``train`` holds the other 1,497. Each example keeps its scikit-learn ``index``.

Importing this module imports ``tensorflow_datasets`` and registers the builder as
``"sklearn_digits"`` (so ``tfds.builder("sklearn_digits", data_dir=...)`` works afterwards).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from bce_gan.data.tfds_source import default_data_dir

__all__ = ["NUM_TEST", "NUM_TRAIN", "SklearnDigits", "TFDS_NAME", "prepare_digits", "split_indices"]

TFDS_NAME = "sklearn_digits"
NUM_IMAGES = 1797
NUM_TEST = 300
NUM_TRAIN = NUM_IMAGES - NUM_TEST  # 1497
PIXEL_MAX = 16


def split_indices(split: str) -> np.ndarray:
    """Indices (in scikit-learn's order) of the images in ``split``: test = multiples of 6."""
    index = np.arange(NUM_IMAGES)
    in_test = index % 6 == 0
    return index[in_test] if split == "test" else index[~in_test]


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8×8 digits (pixels 0..16), split 1,497 train / 300 test."""

    name = TFDS_NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: test = indices divisible by 6."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "The 1,797 8x8 handwritten digits bundled with scikit-learn (pixels 0..16). "
                "test: the 300 images whose index is a multiple of 6; train: the other 1,497."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                    "index": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation=(
                "@misc{alpaydin1998optdigits, author={Alpaydin, E. and Kaynak, C.}, "
                "title={Optical Recognition of Handwritten Digits}, year={1998}, "
                "howpublished={UCI Machine Learning Repository}}"
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the data ship with scikit-learn
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.uint8)[..., None]  # exact: pixels are integers 0..16
        for i in split_indices(split):
            yield int(i), {"image": images[i], "label": int(digits.target[i]), "index": int(i)}


def prepare_digits(data_dir: str | None = None) -> str:
    """Prepares the digits into the TFDS data dir if they are not there yet (offline, < 1 s).

    Args:
        data_dir: the TFDS data dir; default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``.

    Returns:
        The prepared dataset's directory, ``<data_dir>/sklearn_digits/<version>``.
    """
    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir else default_data_dir()
    builder = SklearnDigits(data_dir=data_dir)
    if not builder.is_prepared():
        try:
            builder.download_and_prepare(
                file_format="array_record",
                download_config=tfds.download.DownloadConfig(try_download_gcs=False),
            )
        except Exception:
            # Another process may have prepared it at the same time: then all is well.
            if not SklearnDigits(data_dir=data_dir).is_prepared():
                raise
    return str(builder.data_dir)
