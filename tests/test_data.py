"""Tests for bce_gan.data: 2-D mixtures, the embedded digits TFDS builder, TFDS image datasets.

Everything runs offline: every test gets an empty TFDS data dir (``TFDS_DATA_DIR`` points into
``tmp_path``) and any attempt to open a network connection or to download fails the test.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bce_gan import data
from bce_gan.data import DatasetNotPreparedError, load_dataset, mixture_modes

tfds = pytest.importorskip("tensorflow_datasets")

IMAGE_SPECS = {  # name -> (shape, num_classes)
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, no downloads, an empty default TFDS data dir, no cached arrays."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", refuse)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", refuse)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "default_tfds"))
    data.clear_cache()
    yield attempts
    data.clear_cache()
    assert not attempts, f"tried the network: {attempts}"


# --------------------------------------------------------------------------------------
# 2-D mixtures
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, num_modes, geometry",
    [("ring8", 8, {"radius": 1.0, "std": 0.01}), ("grid25", 25, {"spacing": 2.0, "std": 0.05})],
)
def test_mixture_defaults(name, num_modes, geometry):
    train = load_dataset(name)
    test = load_dataset(name, "test")
    assert train.x.shape == (100_000, 2) and test.x.shape == (2_500, 2)
    for ds in (train, test):
        assert ds.x.dtype == np.float32 and ds.labels.dtype == np.int32
        assert ds.labels.shape == (len(ds.x),)
        assert ds.shape == (2,) and ds.value_range is None and ds.num_classes == num_modes
        assert ds.info == json.loads(json.dumps(ds.info))  # JSON-serialisable, unchanged
        assert {k: ds.info[k] for k in geometry} == geometry
        assert ds.info["seed"] == 0 and ds.info["num_samples"] == len(ds.x)
        np.testing.assert_array_equal(np.asarray(ds.info["modes"], np.float32), mixture_modes(name))
    # Modes are drawn uniformly: every mode within 10% of n / K in the train split.
    counts = np.bincount(train.labels, minlength=num_modes)
    assert len(counts) == num_modes
    np.testing.assert_allclose(counts, 100_000 / num_modes, rtol=0.1)


def test_ring8_modes_on_the_circle():
    modes = mixture_modes("ring8")
    assert modes.shape == (8, 2) and modes.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 1.0, rtol=1e-6)
    angles = np.arctan2(modes[:, 1], modes[:, 0])
    np.testing.assert_allclose(np.mod(angles, 2 * np.pi), 2 * np.pi * np.arange(8) / 8, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(mixture_modes("ring8", radius=2.0), axis=1), 2.0)


def test_grid25_modes_on_the_grid():
    modes = mixture_modes("grid25")
    assert modes.shape == (25, 2)
    assert {tuple(m) for m in modes.tolist()} == {
        (float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)
    }
    assert np.abs(mixture_modes("grid25", spacing=1.0)).max() == 2.0


@pytest.mark.parametrize(
    "name, options, scale",
    [
        ("ring8", {}, 1.0),
        ("grid25", {}, 2.0),
        ("ring8", {"radius": 2.0, "std": 0.02}, 2.0),  # the other papers' setting
        ("grid25", {"spacing": 1.0, "std": 0.02}, 1.0),
    ],
)
def test_samples_scatter_around_their_mode_with_std(name, options, scale):
    ds = load_dataset(name, "test", num_samples=20_000, **options)
    std = ds.info["std"]
    assert {k: ds.info[k] for k in options} == options
    modes = mixture_modes(name, **options)
    np.testing.assert_array_equal(np.asarray(ds.info["modes"], np.float32), modes)
    assert np.abs(modes).max() == pytest.approx(2 * scale if name == "grid25" else scale)
    residual = ds.x - modes[ds.labels]
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=0.05 * std)
    np.testing.assert_allclose(residual.std(axis=0), std, rtol=0.03)
    # With std far below the spacing of the modes, each sample's nearest mode is its label.
    nearest = np.argmin(np.linalg.norm(ds.x[:, None, :] - modes[None], axis=-1), axis=1)
    np.testing.assert_array_equal(nearest, ds.labels)


def test_mixture_streams():
    a = load_dataset("ring8", "train", num_samples=1000)
    a_again = load_dataset("ring8", "train", num_samples=1000)
    test = load_dataset("ring8", "test", num_samples=1000)
    other_seed = load_dataset("ring8", "train", num_samples=1000, seed=1)
    np.testing.assert_array_equal(a.x, a_again.x)
    np.testing.assert_array_equal(a.labels, a_again.labels)
    assert not np.allclose(a.x, test.x)
    assert not np.allclose(a.x, other_seed.x)
    assert other_seed.info["seed"] == 1
    # The caller owns the arrays: writing into one load leaves the next one intact.
    a.x[:] = 0.0
    np.testing.assert_array_equal(load_dataset("ring8", num_samples=1000).x, a_again.x)
    data.clear_cache()
    np.testing.assert_array_equal(load_dataset("ring8", num_samples=1000).x, a_again.x)


def test_mixture_ignores_value_range_and_data_dir(tmp_path):
    ds = load_dataset("grid25", "test", value_range=(-1.0, 1.0), data_dir=str(tmp_path))
    assert ds.value_range is None
    assert np.abs(ds.x).max() > 3.5  # raw coordinates, not rescaled
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "options, match",
    [
        ({"std": -0.1}, "std"),
        ({"std": float("nan")}, "std"),
        ({"radius": 0}, "radius"),
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 2.5}, "num_samples"),
        ({"seed": -1}, "seed"),
    ],
)
def test_mixture_rejects_bad_values(options, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("ring8", **options)


# --------------------------------------------------------------------------------------
# digits: the embedded TFDS builder
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """A TFDS data dir with sklearn_digits prepared once for the module."""
    data_dir = str(tmp_path_factory.mktemp("tfds_digits"))
    data.prepare_digits(data_dir)
    return data_dir


def test_prepare_digits_offline(tmp_path):
    path = data.prepare_digits(str(tmp_path))
    assert path == str(tmp_path / "sklearn_digits" / "1.0.0")
    files = sorted(os.listdir(path))
    assert "dataset_info.json" in files
    assert any(f.startswith("sklearn_digits-train.array_record") for f in files)
    builder = tfds.builder("sklearn_digits", data_dir=str(tmp_path))  # registered by name
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == 1497
    assert builder.info.splits["test"].num_examples == 300
    assert data.prepare_digits(str(tmp_path)) == path  # a no-op the second time


def test_digits_arrays(digits_dir):
    from sklearn.datasets import load_digits

    train = load_dataset("digits", data_dir=digits_dir)
    test = load_dataset("digits", "test", data_dir=digits_dir, value_range=(-1.0, 1.0))
    assert train.x.shape == (1497, 8, 8, 1) and test.x.shape == (300, 8, 8, 1)
    assert train.shape == (8, 8, 1) and train.num_classes == 10
    assert train.x.dtype == np.float32 and train.labels.dtype == np.int32
    assert train.value_range == (0.0, 1.0) and test.value_range == (-1.0, 1.0)
    assert train.x.min() == 0.0 and train.x.max() == 1.0
    assert test.x.min() == -1.0 and test.x.max() == 1.0
    for ds in (train, test):
        assert set(ds.labels.tolist()) == set(range(10))
        assert ds.info == {"tfds_name": "sklearn_digits", "data_dir": digits_dir, "pixel_max": 16}
    # The split is fixed: test = scikit-learn indices divisible by 6, train = the others, in order.
    sk = load_digits()
    index = np.arange(len(sk.target))
    for ds, keep, (low, high) in ((train, index % 6 != 0, (0, 1)), (test, index % 6 == 0, (-1, 1))):
        pixels = (ds.x[..., 0] - low) / (high - low) * 16
        np.testing.assert_allclose(pixels, sk.images[keep], atol=1e-5)
        np.testing.assert_array_equal(ds.labels, sk.target[keep])


def test_digits_prepared_only_once(digits_dir, monkeypatch):
    from bce_gan.data import digits

    info_file = os.path.join(digits_dir, "sklearn_digits", "1.0.0", "dataset_info.json")
    before = os.stat(info_file).st_mtime_ns
    first = load_dataset("digits", "test", data_dir=digits_dir)

    def fail(*args, **kwargs):
        raise AssertionError("digits prepared a second time")

    monkeypatch.setattr(digits.SklearnDigits, "_generate_examples", fail)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    data.clear_cache()  # read the files again, not the arrays kept in memory
    second = load_dataset("digits", "test", data_dir=digits_dir)
    np.testing.assert_array_equal(first.x, second.x)
    assert os.stat(info_file).st_mtime_ns == before


def test_digits_default_data_dir(tmp_path):
    ds = load_dataset("digits", "test")  # TFDS_DATA_DIR -> tmp_path / default_tfds
    assert ds.info["data_dir"] == str(tmp_path / "default_tfds")
    assert (tmp_path / "default_tfds" / "sklearn_digits" / "1.0.0" / "dataset_info.json").exists()


# --------------------------------------------------------------------------------------
# mnist, fashion_mnist, cifar10 through TFDS
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(IMAGE_SPECS))
def test_tfds_images_with_mock_data(name, tmp_path):
    shape, num_classes = IMAGE_SPECS[name]
    with tfds.testing.mock_data(num_examples=24):
        # The mock works with tfds.data_source: uint8 HxWxC images by the real feature spec.
        example = tfds.data_source(name, split="train", data_dir=str(tmp_path), download=False)[0]
        assert example["image"].shape == shape and example["image"].dtype == np.uint8
        ds = load_dataset(name, "train", data_dir=str(tmp_path), value_range=(-1.0, 1.0))
        small = load_dataset(name, "test", data_dir=str(tmp_path))
    assert ds.x.shape == (24, *shape) and ds.x.dtype == np.float32
    assert ds.shape == shape and ds.num_classes == num_classes and ds.value_range == (-1.0, 1.0)
    assert -1.0 <= ds.x.min() < -0.9 and 0.9 < ds.x.max() <= 1.0
    assert small.x.min() >= 0.0 and small.x.max() <= 1.0
    assert ds.labels.dtype == np.int32 and ds.labels.shape == (24,)
    assert ds.labels.min() >= 0 and ds.labels.max() < num_classes
    assert ds.info == {"tfds_name": name, "data_dir": str(tmp_path), "pixel_max": 255}
    with tfds.testing.mock_data(num_examples=5):  # mocked data are never cached
        assert len(load_dataset(name, "train", data_dir=str(tmp_path)).x) == 5


def _prepare_fake(name, data_dir, num_examples, seed=0):
    """Writes random images as TFDS dataset ``name`` (its real builder and features, array_record).

    Images are given to TFDS as PNG bytes, so preparing needs no TensorFlow; reading then goes
    through the real path (array_record files, PNG decoding), unlike the mock.
    """
    from PIL import Image

    shape, num_classes = IMAGE_SPECS[name]
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_examples, *shape), dtype=np.uint8)
    labels = np.arange(num_examples) % num_classes
    tfds_name = name

    class Fake(tfds.builder_cls(name), skip_registration=True):
        name = tfds_name

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(), "test": self._generate_examples()}

        def _generate_examples(self):
            for i in range(num_examples):
                png = io.BytesIO()
                image = images[i].squeeze(-1) if shape[-1] == 1 else images[i]
                Image.fromarray(image).save(png, "PNG")
                example = {"image": png.getvalue(), "label": int(labels[i])}
                if "id" in self.info.features:
                    example["id"] = f"fake_{i:05d}"
                yield f"{i:05d}", example

    Fake(data_dir=data_dir).download_and_prepare(file_format="array_record")
    return images, labels


@pytest.mark.parametrize("name", sorted(IMAGE_SPECS))
def test_tfds_images_from_prepared_files(name, tmp_path):
    images, labels = _prepare_fake(name, str(tmp_path), num_examples=40)
    ds = load_dataset(name, "train", data_dir=str(tmp_path))
    # TFDS stores examples in a shuffled order: compare as sets of (label, image).
    order = np.lexsort((ds.labels, (ds.x * 255).round().reshape(len(ds.x), -1).sum(1)))
    ref_order = np.lexsort((labels, images.reshape(len(images), -1).astype(np.int64).sum(1)))
    np.testing.assert_array_equal((ds.x[order] * 255).round().astype(np.uint8), images[ref_order])
    np.testing.assert_array_equal(ds.labels[order], labels[ref_order])
    assert len(load_dataset(name, "test[:10]", data_dir=str(tmp_path)).x) == 10
    # A second load in the process reuses the arrays read from disk.
    from bce_gan.data import tfds_source

    assert len(tfds_source._CACHE) == 2
    np.testing.assert_array_equal(load_dataset(name, data_dir=str(tmp_path)).x, ds.x)
    assert len(tfds_source._CACHE) == 2


@pytest.mark.parametrize("name", sorted(IMAGE_SPECS))
def test_unprepared_dataset_fails_fast(name, tmp_path, monkeypatch, offline):
    def no_prepare(self, *args, **kwargs):
        offline.append(("download_and_prepare", self.name))
        raise AssertionError("tried to prepare")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_prepare)
    data_dir = str(tmp_path / "empty")
    os.makedirs(data_dir)
    start = time.monotonic()
    with pytest.raises(DatasetNotPreparedError) as error:
        load_dataset(name, "train", data_dir=data_dir)
    assert time.monotonic() - start < 5.0
    assert isinstance(error.value, RuntimeError)
    message = str(error.value)
    parts = (repr(name), data_dir, "download_and_prepare", "TensorFlow", "internet", "bce_gan[tf]")
    for part in parts:
        assert part in message
    assert os.listdir(data_dir) == []  # nothing written


def test_unprepared_dataset_names_default_data_dir(tmp_path):
    with pytest.raises(DatasetNotPreparedError, match="default_tfds"):
        load_dataset("mnist", "test")


def test_tfrecord_only_dataset_says_how_to_convert(tmp_path):
    path = data.prepare_digits(str(tmp_path))
    info_file = os.path.join(path, "dataset_info.json")
    with open(info_file) as f:
        info = json.load(f)
    info["fileFormat"] = "tfrecord"
    with open(info_file, "w") as f:
        json.dump(info, f)
    with pytest.raises(DatasetNotPreparedError, match="convert_format"):
        load_dataset("digits", data_dir=str(tmp_path))


# --------------------------------------------------------------------------------------
# Errors and imports
# --------------------------------------------------------------------------------------


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="known datasets") as error:
        load_dataset("svhn")
    for name in data.DATASET_NAMES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="ring8, grid25"):
        mixture_modes("mnist")
    with pytest.raises(ValueError, match="known datasets"):
        mixture_modes("ring9")


@pytest.mark.parametrize(
    "name, allowed",
    [
        ("ring8", ["num_samples", "radius", "seed", "std"]),
        ("grid25", ["num_samples", "seed", "spacing", "std"]),
        ("mnist", ["value_range", "data_dir"]),
        ("digits", ["value_range", "data_dir"]),
    ],
)
def test_unknown_option_names_it_and_the_allowed_ones(name, allowed):
    with pytest.raises(ValueError, match="bogus") as error:
        load_dataset(name, bogus=1)
    for option in allowed:
        assert option in str(error.value)
    with pytest.raises(ValueError, match="spacing"):
        mixture_modes("ring8", spacing=1.0)


@pytest.mark.parametrize(
    "name, split",
    [("ring8", "validation"), ("ring8", "train[:9]"), ("mnist", "valid"), ("digits", "train+test")],
)
def test_unknown_split_lists_the_allowed_ones(name, split):
    with pytest.raises(ValueError, match=r"unknown split.*'train', 'test'"):
        load_dataset(name, split)


@pytest.mark.parametrize("value_range", [None, (1.0, 0.0), (0.0,), (0.0, float("inf"))])
def test_images_need_a_valid_value_range(value_range):
    with pytest.raises(ValueError, match="value_range"):
        load_dataset("mnist", value_range=value_range)


def test_import_is_light():
    code = (
        "import sys, bce_gan.data; "
        "assert 'tensorflow_datasets' not in sys.modules; assert 'tensorflow' not in sys.modules"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_never_imports_tensorflow(digits_dir):
    load_dataset("digits", data_dir=digits_dir)
    assert "tensorflow" not in sys.modules
