"""Reading prepared TFDS datasets into NumPy arrays, without TensorFlow and without the network.

Everything goes through ``tfds.data_source(..., download=False)`` (array_record files, random
access, decoded with NumPy/PIL). A dataset that is not prepared fails in well under a second with
:class:`DatasetNotPreparedError`, whose message names the dataset, the data dir and the command
that prepares it; nothing here ever starts a download (offline, TFDS would otherwise hang for
minutes before failing).

``tensorflow_datasets`` is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "DatasetNotPreparedError",
    "clear_tfds_cache",
    "default_data_dir",
    "prepare_command",
    "read_tfds",
]

# Examples fetched per `__getitems__` call.
_CHUNK = 4096

# (tfds_name, split, dataset dir, mtime of its dataset_info.json) -> (images, labels).
# Only datasets read from real files on disk are cached (never mocked ones).
_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


class DatasetNotPreparedError(RuntimeError):
    """A TFDS dataset is not prepared (in a random-access format) in the data dir."""


def default_data_dir() -> str:
    """The default TFDS data dir: ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``.

    Read at call time (TFDS itself reads the variable once, at import).
    """
    return os.path.expanduser(
        os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    )


def prepare_command(tfds_name: str, data_dir: str) -> str:
    """The command that downloads and prepares ``tfds_name`` as array_record in ``data_dir``."""
    return (
        "pip install 'bce_gan[tf]' && python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{tfds_name}', data_dir='{data_dir}')"
        ".download_and_prepare(file_format='array_record')\""
    )


def _not_prepared_message(tfds_name: str, data_dir: str, problem: str) -> str:
    return (
        f"TFDS dataset {tfds_name!r} is not prepared in data dir {data_dir!r} ({problem}). "
        "Preparing it needs TensorFlow and internet access, once; run:\n"
        f"    {prepare_command(tfds_name, data_dir)}\n"
        "then load it again (or copy the prepared data dir to this machine, and pass "
        "data_dir= or set TFDS_DATA_DIR)."
    )


def _diagnose(tfds_name: str, data_dir: str) -> DatasetNotPreparedError | None:
    """Why ``tfds_name`` cannot be read from ``data_dir``; None if it looks prepared."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except Exception:  # noqa: BLE001 -- a broken builder: let the original error speak
        return None
    if not builder.is_prepared():
        return DatasetNotPreparedError(
            _not_prepared_message(tfds_name, data_dir, f"nothing at {builder.data_dir}")
        )
    info = builder.info
    formats = {str(getattr(f, "value", f)) for f in info.available_file_formats()}
    formats.add(str(getattr(info.file_format, "value", info.file_format or "tfrecord")))
    if not formats & {"array_record", "parquet"}:
        return DatasetNotPreparedError(
            f"TFDS dataset {tfds_name!r} in data dir {data_dir!r} is stored only as "
            f"{sorted(formats)} (at {builder.data_dir}), which needs TensorFlow to read. Convert "
            "it to array_record once, where TensorFlow is installed "
            "(pip install 'bce_gan[tf]'):\n"
            f"    tfds convert_format --dataset_version_dir={builder.data_dir} "
            "--out_file_format=array_record\n"
            "or delete that folder and prepare it again with download_and_prepare:\n"
            f"    {prepare_command(tfds_name, data_dir)}"
        )
    return None


def _open_source(tfds_name: str, split: str, data_dir: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # noqa: BLE001 -- diagnosed below; anything else is re-raised
        not_prepared = _diagnose(tfds_name, data_dir)
        if not_prepared is not None:
            raise not_prepared from e
        raise


def _cache_key(source, tfds_name: str, split: str) -> tuple | None:
    """A key for data read from files on disk; None for anything else (e.g. a mocked source)."""
    try:
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        if not isinstance(source.data_source, ArrayRecordDataSource):
            return None  # tfds.testing.mock_data puts a mock here
        info_file = os.path.join(os.fspath(source.dataset_info.data_dir), "dataset_info.json")
        return (tfds_name, split, info_file, os.stat(info_file).st_mtime_ns)
    except (AttributeError, ImportError, OSError, TypeError):
        return None


def _fetch(source, keys: list[int], batched: list[bool]) -> list:
    """Examples ``keys`` of ``source``, by one ``__getitems__`` call where that works."""
    if batched[0]:
        try:
            examples = source.__getitems__(keys)
            if len(examples) == len(keys):
                return list(examples)
        except (AttributeError, NotImplementedError, TypeError):
            pass
        batched[0] = False  # e.g. the TFDS mock's __getitems__ is broken: fall back for good
    return [source[i] for i in keys]


def read_tfds(
    tfds_name: str,
    split: str,
    data_dir: str,
    *,
    image_shape: tuple[int, ...],
    image_key: str = "image",
    label_key: str = "label",
    order_key: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All examples of a prepared TFDS split as NumPy arrays.

    Args:
        tfds_name: the TFDS builder name, e.g. ``"mnist"``.
        split: a TFDS split, e.g. ``"train"`` or ``"train[:90%]"``.
        data_dir: the TFDS data dir (never None here: resolve it first).
        image_shape: the expected shape of one image, e.g. ``(28, 28, 1)``.
        image_key, label_key: feature names of the image and the label.
        order_key: if given, an integer feature by which the examples are sorted.

    Returns:
        ``(images, labels)``: ``[n, *image_shape]`` uint8 and ``[n]`` int32 arrays. They may be
        shared with a process-wide cache: copy before writing into them.

    Raises:
        DatasetNotPreparedError: the dataset is not prepared as array_record in ``data_dir``.
        ValueError: an example has an unexpected shape.
    """
    source = _open_source(tfds_name, split, data_dir)
    key = _cache_key(source, tfds_name, split)
    if key is not None and key in _CACHE:
        return _CACHE[key]

    n = len(source)
    images = np.empty((n, *image_shape), np.uint8)
    labels = np.empty((n,), np.int64)
    order = np.empty((n,), np.int64) if order_key else None
    batched = [True]
    for start in range(0, n, _CHUNK):
        keys = list(range(start, min(n, start + _CHUNK)))
        for i, example in zip(keys, _fetch(source, keys, batched)):
            image = np.asarray(example[image_key])
            if image.shape != tuple(image_shape):
                raise ValueError(
                    f"{tfds_name} example {i} has image shape {image.shape}; "
                    f"expected {tuple(image_shape)}"
                )
            images[i] = image
            labels[i] = example[label_key]
            if order is not None:
                order[i] = example[order_key]
    if order is not None:
        permutation = np.argsort(order, kind="stable")
        images, labels = images[permutation], labels[permutation]
    result = (images, labels.astype(np.int32))
    for array in result:
        array.flags.writeable = False
    if key is not None:
        _CACHE[key] = result
    return result


def clear_tfds_cache() -> None:
    """Forgets every array read from disk."""
    _CACHE.clear()
