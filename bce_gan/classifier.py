"""In-project image classifiers and the classifier-based sample-quality metrics.

No Inception weights can be had offline, so each image dataset gets a small classifier trained
here (Flax NNX + Optax, on the training split), following ``DESIGN.md`` ("Metrics protocols"):

* ``digits`` (8 x 8 x 1): an MLP 64 -> 256 -> 128 (penultimate) -> 10.
* ``mnist``, ``fashion_mnist`` (28 x 28 x 1) and ``cifar10`` (32 x 32 x 3): a LeNet-size CNN,
  conv 3x3 32 -> avg-pool 2 -> conv 3x3 64 -> avg-pool 2 -> dense 128 (penultimate) -> 10.

Its weights are cached on disk, keyed by the dataset and a hash of its config, together with its
test accuracy. :func:`image_metrics` then compares generated images with held-out real test
images on the penultimate (post-ReLU) features: the Fréchet distance (FID with our classifier),
the kernel distance (KID), and the predicted-class histogram (KL to uniform, classes hit), always
beside the real-vs-real baseline of the same sample count::

    >>> from bce_gan.classifier import image_metrics, load_or_train_classifier
    >>> clf = load_or_train_classifier("digits")          # trains once (~10 s on a CPU), then cached
    >>> clf.test_accuracy                                  # recorded in info.json
    >>> image_metrics(samples, "digits", classifier=clf, value_range=(-1.0, 1.0))

References:
    Heusel et al., 2017. GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium. https://arxiv.org/abs/1706.08500
    Bińkowski et al., 2018. Demystifying MMD GANs. https://arxiv.org/abs/1801.01401
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bce_gan import io, metrics
from bce_gan.data import load_dataset

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "ClassifierNet",
    "default_cache_dir",
    "default_config",
    "image_metrics",
    "load_or_train_classifier",
    "train_classifier",
]

# dataset -> (image shape, number of classes)
_IMAGE_DATASETS = {
    "digits": ((8, 8, 1), 10),
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
}
_PARAMS_FILE = "params.npz"
_INFO_FILE = "info.json"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Architecture and training settings of one classifier.

    The network is ``conv_features`` 3x3 convolutions (each ReLU then 2x2 average pooling), a
    flatten, ``dense_features`` dense layers (ReLU), and a linear layer to ``num_classes`` logits.
    With no convolutions it is an MLP. The features used by the metrics are the post-ReLU
    activations of the last dense layer (the penultimate layer).

    Attributes:
        dataset: the registry name, e.g. ``"digits"``.
        image_shape: one image's shape ``(H, W, C)``.
        num_classes: number of classes.
        conv_features: output channels of the convolutions, e.g. ``(32, 64)``; ``()`` for an MLP.
        dense_features: widths of the hidden dense layers; the last is the feature dimension.
        learning_rate: Adam learning rate.
        batch_size: training batch size (the last partial batch of an epoch is dropped).
        num_epochs: passes over the training split.
        seed: seed of the initialisation and of the batch order.
    """

    dataset: str
    image_shape: tuple[int, ...]
    num_classes: int = 10
    conv_features: tuple[int, ...] = ()
    dense_features: tuple[int, ...] = (256, 128)
    learning_rate: float = 1e-3
    batch_size: int = 128
    num_epochs: int = 60
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def config_hash(self) -> str:
        """The first 12 hex digits of the SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return hashlib.sha256(io.json_key(self.to_dict()).encode()).hexdigest()[:12]

    @property
    def feature_layer(self) -> str:
        """Name of the feature layer, e.g. ``"dense_1/relu (128)"``."""
        index = len(self.dense_features) - 1
        return f"dense_{index}/relu ({self.dense_features[-1]})"


def default_config(dataset: str) -> ClassifierConfig:
    """The default classifier of an image dataset.

    Args:
        dataset: ``"digits"`` (MLP 256-128, 60 epochs), ``"mnist"``, ``"fashion_mnist"`` (LeNet
            size CNN, 3 epochs) or ``"cifar10"`` (the same CNN, 10 epochs).

    Returns:
        A :class:`ClassifierConfig`.

    Raises:
        ValueError: for a dataset that is not an image dataset.
    """
    if dataset not in _IMAGE_DATASETS:
        raise ValueError(
            f"no classifier for dataset {dataset!r}; image datasets: {', '.join(_IMAGE_DATASETS)}"
        )
    shape, num_classes = _IMAGE_DATASETS[dataset]
    if dataset == "digits":
        return ClassifierConfig(dataset, shape, num_classes, (), (256, 128), num_epochs=60)
    num_epochs = 10 if dataset == "cifar10" else 3
    return ClassifierConfig(dataset, shape, num_classes, (32, 64), (128,), num_epochs=num_epochs)


class ClassifierNet(nnx.Module):
    """Convolutions (optional), dense layers, logits; see :class:`ClassifierConfig`."""

    def __init__(self, config: ClassifierConfig, *, rngs: nnx.Rngs):
        height, width, channels = config.image_shape
        c_in = channels
        convs = []
        for c_out in config.conv_features:
            convs.append(nnx.Conv(c_in, c_out, (3, 3), rngs=rngs))
            c_in = c_out
            height, width = height // 2, width // 2
        self.convs = nnx.List(convs)
        w_in = height * width * c_in
        dense = []
        for w_out in config.dense_features:
            dense.append(nnx.Linear(w_in, w_out, rngs=rngs))
            w_in = w_out
        self.dense = nnx.List(dense)
        self.head = nnx.Linear(w_in, config.num_classes, rngs=rngs)

    def features_and_logits(self, x_BxHxWxC: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns ``([B, d] penultimate features, [B, num_classes] logits)`` of images in [0, 1]."""
        h = x_BxHxWxC
        for conv in self.convs:
            h = nnx.avg_pool(nnx.relu(conv(h)), (2, 2), strides=(2, 2))
        h = h.reshape(h.shape[0], -1)
        for layer in self.dense:
            h = nnx.relu(layer(h))
        return h, self.head(h)

    def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
        return self.features_and_logits(x_BxHxWxC)[1]


def _to_unit_range(images, value_range) -> np.ndarray:
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ValueError(f"value_range must have low < high; got {value_range!r}")
    x = np.asarray(images, dtype=np.float32)
    return (x - np.float32(low)) * np.float32(1.0 / (high - low))


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, params, x_BxHxWxC):
    return nnx.merge(graphdef, params).features_and_logits(x_BxHxWxC)


class Classifier:
    """A trained classifier: graphdef and parameters, applied by a jitted function in batches.

    Attributes:
        config: its :class:`ClassifierConfig`.
        test_accuracy: accuracy on the dataset's test split, recorded at training time.
        feature_layer: name of the layer :meth:`features` returns.
        num_classes: number of classes.
        value_range: ``(0.0, 1.0)``, the range the network sees; inputs are rescaled from the
            ``value_range`` given to :meth:`features` / :meth:`predict`.
        info: the contents of ``info.json``.
    """

    value_range = (0.0, 1.0)

    def __init__(self, config: ClassifierConfig, graphdef, params, info: dict):
        self.config = config
        self.graphdef = graphdef
        self.params = params
        self.info = dict(info)
        self.test_accuracy = float(info["test_accuracy"])
        self.feature_layer = config.feature_layer
        self.num_classes = config.num_classes

    def _run(self, images, value_range, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        x = _to_unit_range(images, value_range)
        shape = tuple(self.config.image_shape)
        if x.ndim != 4 or x.shape[1:] != shape:
            raise ValueError(f"images must be [n, {', '.join(map(str, shape))}]; got {x.shape}")
        n = x.shape[0]
        feats, logits = [], []
        for start in range(0, n, batch_size):
            chunk = x[start : start + batch_size]
            pad = batch_size - chunk.shape[0]  # one compiled shape: pad the last batch
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *shape), np.float32)])
            f, lg = _apply(self.graphdef, self.params, jnp.asarray(chunk))
            feats.append(np.asarray(f)[: batch_size - pad])
            logits.append(np.asarray(lg)[: batch_size - pad])
        if not feats:
            return (np.zeros((0, self.config.dense_features[-1]), np.float32),
                    np.zeros((0, self.num_classes), np.float32))
        return np.concatenate(feats), np.concatenate(logits)

    def features(self, images, value_range=(0.0, 1.0), *, batch_size: int = 500) -> np.ndarray:
        """Penultimate activations.

        Args:
            images: ``[n, H, W, C]`` images with pixels in ``value_range``.
            value_range: ``(low, high)`` of the pixels; rescaled linearly to ``[0, 1]`` (not
                clipped).
            batch_size: keyword-only; images per jitted call.

        Returns:
            ``[n, d]`` float32 features (``d = config.dense_features[-1]``).
        """
        return self._run(images, value_range, batch_size)[0]

    def logits(self, images, value_range=(0.0, 1.0), *, batch_size: int = 500) -> np.ndarray:
        """``[n, num_classes]`` float32 logits; arguments as in :meth:`features`."""
        return self._run(images, value_range, batch_size)[1]

    def predict(self, images, value_range=(0.0, 1.0), *, batch_size: int = 500) -> np.ndarray:
        """``[n]`` int predicted labels; arguments as in :meth:`features`."""
        return np.argmax(self.logits(images, value_range, batch_size=batch_size), axis=1)


def default_cache_dir() -> str:
    """``$BCE_GAN_CACHE/classifiers``, or ``~/.cache/bce_gan/classifiers``."""
    root = os.environ.get("BCE_GAN_CACHE") or os.path.join("~", ".cache", "bce_gan")
    return os.path.join(os.path.expanduser(root), "classifiers")


def _create_model(config: ClassifierConfig) -> ClassifierNet:
    return ClassifierNet(config, rngs=nnx.Rngs(config.seed))


def _train_epoch(graphdef, tx, params, opt_state, x_NxHxWxC, labels_N, key, *, batch_size: int):
    """One epoch in a ``lax.scan`` over shuffled batches; the last partial batch is dropped."""
    n = x_NxHxWxC.shape[0]
    num_batches = n // batch_size
    perm = jax.random.permutation(key, n)[: num_batches * batch_size]
    batch_idx = perm.reshape(num_batches, batch_size)

    def loss_fn(p, x, y):
        logits = nnx.merge(graphdef, p)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(carry, idx):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, x_NxHxWxC[idx], labels_N[idx])
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batch_idx)
    return params, opt_state, losses.mean()


def train_classifier(config: ClassifierConfig, *, data_dir: str | None = None) -> Classifier:
    """Trains a classifier on the training split and measures its test accuracy.

    Adam on the softmax cross-entropy; one jitted ``lax.scan`` per epoch; batch order from
    ``jax.random.fold_in(key(seed), epoch)``.

    Args:
        config: the :class:`ClassifierConfig`.
        data_dir: keyword-only; TFDS data dir passed to :func:`bce_gan.data.load_dataset`.

    Returns:
        The trained :class:`Classifier` (``info`` holds ``test_accuracy``, ``config``,
        ``feature_layer``, ``num_train``, ``num_test``, ``final_train_loss``).
    """
    train = load_dataset(config.dataset, "train", data_dir=data_dir)
    test = load_dataset(config.dataset, "test", data_dir=data_dir)
    if tuple(train.shape) != tuple(config.image_shape) or train.num_classes != config.num_classes:
        raise ValueError(
            f"config expects {config.image_shape} images and {config.num_classes} classes; "
            f"dataset {config.dataset!r} has {train.shape} and {train.num_classes}"
        )
    batch_size = min(config.batch_size, len(train))
    model = _create_model(config)
    graphdef, params = nnx.split(model)
    tx = optax.adam(config.learning_rate)
    opt_state = tx.init(params)
    epoch_fn = jax.jit(
        functools.partial(_train_epoch, graphdef, tx, batch_size=batch_size), donate_argnums=(0, 1)
    )
    x, y = jnp.asarray(train.x), jnp.asarray(train.labels)
    key = jax.random.key(config.seed)
    loss = jnp.nan
    for epoch in range(config.num_epochs):
        params, opt_state, loss = epoch_fn(params, opt_state, x, y, jax.random.fold_in(key, epoch))
    info = {
        "dataset": config.dataset,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "feature_layer": config.feature_layer,
        "num_train": len(train),
        "num_test": len(test),
        "final_train_loss": float(loss),
        "test_accuracy": float("nan"),
    }
    classifier = Classifier(config, graphdef, params, info)
    accuracy = float(np.mean(classifier.predict(test.x, test.value_range) == test.labels))
    classifier.info["test_accuracy"] = accuracy
    classifier.test_accuracy = accuracy
    return classifier


def _param_arrays(params) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _save(classifier: Classifier, folder: str) -> None:
    with io.atomic_path(os.path.join(folder, _PARAMS_FILE)) as tmp:
        np.savez(tmp, **_param_arrays(classifier.params))
    io.write_json(os.path.join(folder, _INFO_FILE), classifier.info)  # written last: marks done


def _load(config: ClassifierConfig, folder: str) -> Classifier:
    with open(os.path.join(folder, _INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    graphdef, params = nnx.split(_create_model(config))
    with np.load(os.path.join(folder, _PARAMS_FILE)) as saved:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        values = []
        for path, leaf in leaves:
            name = jax.tree_util.keystr(path)
            if name not in saved or saved[name].shape != leaf.shape:
                raise ValueError(f"cached parameters in {folder} do not match the config ({name})")
            values.append(jnp.asarray(saved[name], dtype=leaf.dtype))
    return Classifier(config, graphdef, jax.tree_util.tree_unflatten(treedef, values), info)


def load_or_train_classifier(
    dataset: str,
    *,
    config: ClassifierConfig | None = None,
    cache_dir: str | None = None,
    data_dir: str | None = None,
) -> Classifier:
    """Loads a cached classifier, or trains one and caches it.

    The cache folder is ``<cache_dir>/<dataset>-<config hash>/`` with ``params.npz`` (the
    parameters by their pytree path) and ``info.json`` (``test_accuracy``, ``config``,
    ``feature_layer``, ``num_train``, ...), each written atomically, ``info.json`` last.

    Args:
        dataset: an image dataset name.
        config: keyword-only; default :func:`default_config` of ``dataset``.
        cache_dir: keyword-only; the root of the cache; default :func:`default_cache_dir`.
        data_dir: keyword-only; TFDS data dir (only read when training).

    Returns:
        A :class:`Classifier`.

    Raises:
        ValueError: if ``config.dataset`` differs from ``dataset``.
    """
    config = default_config(dataset) if config is None else config
    if config.dataset != dataset:
        raise ValueError(f"config is for {config.dataset!r}, not {dataset!r}")
    root = os.path.expanduser(cache_dir) if cache_dir else default_cache_dir()
    folder = os.path.join(root, f"{dataset}-{config.config_hash()}")
    if os.path.exists(os.path.join(folder, _INFO_FILE)):
        return _load(config, folder)
    classifier = train_classifier(config, data_dir=data_dir)
    _save(classifier, folder)
    return classifier


def image_metrics(
    samples,
    dataset_name: str,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    classifier: Classifier | None = None,
    num_samples: int | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    kid_subsets: int = 10,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Classifier-feature FD and KID of generated images against held-out real test images.

    The real test split is shuffled (``seed``) and cut into two disjoint halves A and B. With
    ``n = min(len(samples), len(test) // 2, num_samples)`` (a random subset of the samples if
    there are more), the samples are compared with the first ``n`` of A; the baseline compares
    the first ``n`` of A with the first ``n`` of B: the value of a perfect generator at this
    ``n`` (FD is biased upwards at small ``n``; always report it beside the baseline).

    Args:
        samples: ``[N, H, W, C]`` generated images with pixels in ``value_range``.
        dataset_name: the image dataset the samples imitate.
        value_range: keyword-only; ``(low, high)`` of the sample pixels, e.g. ``(-1.0, 1.0)``.
        classifier: keyword-only; default :func:`load_or_train_classifier` of the dataset.
        num_samples: keyword-only; an upper bound on ``n``.
        data_dir: keyword-only; TFDS data dir.
        cache_dir: keyword-only; classifier cache root (when ``classifier`` is None).
        kid_subsets: keyword-only; KID subsets.
        kid_subset_size: keyword-only; KID subset size (capped at ``n``). When it reaches ``n``
            every subset is the whole set, so ``kid_std`` is 0; pass a smaller size (e.g.
            ``n // 2``) for a spread.
        seed: keyword-only; seed of the real split, the sample subset and the KID subsets.

    Returns:
        ``{"fd", "fd_baseline", "kid", "kid_std", "kid_baseline", "class_kl", "classes_hit",
        "num_samples", "feature_layer", "classifier_accuracy", "class_histogram"}``; ``class_kl``
        is KL(predicted-class histogram of the samples || uniform).

    Raises:
        ValueError: on fewer than two samples or a shape mismatch.

    References:
        Heusel et al., 2017. GANs Trained by a Two Time-Scale Update Rule Converge to a Local
        Nash Equilibrium. https://arxiv.org/abs/1706.08500
        Bińkowski et al., 2018. Demystifying MMD GANs. https://arxiv.org/abs/1801.01401
    """
    if classifier is None:
        classifier = load_or_train_classifier(dataset_name, cache_dir=cache_dir, data_dir=data_dir)
    samples = np.asarray(samples)
    test = load_dataset(dataset_name, "test", data_dir=data_dir)
    if samples.ndim != 4 or samples.shape[1:] != tuple(test.shape):
        raise ValueError(f"samples must be [n, {test.shape}]; got {samples.shape}")
    rng = np.random.default_rng(seed)
    half = len(test) // 2
    n = min(len(samples), half, num_samples if num_samples is not None else len(samples))
    if n < 2:
        raise ValueError(f"image_metrics needs at least 2 samples and 4 test images; got n={n}")
    perm = rng.permutation(len(test))
    real_a, real_b = test.x[perm[:n]], test.x[perm[half : half + n]]
    if len(samples) > n:
        samples = samples[np.sort(rng.choice(len(samples), n, replace=False))]

    fake_feats, fake_logits = classifier._run(samples, value_range, 500)
    real_a_feats = classifier.features(real_a, test.value_range)
    real_b_feats = classifier.features(real_b, test.value_range)
    stats_a = metrics.feature_statistics(real_a_feats)
    fd = metrics.frechet_distance(*metrics.feature_statistics(fake_feats), *stats_a)
    fd_baseline = metrics.frechet_distance(*metrics.feature_statistics(real_b_feats), *stats_a)
    kid_options = dict(num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    kid, kid_std = metrics.kernel_inception_distance(fake_feats, real_a_feats, **kid_options)
    kid_baseline, _ = metrics.kernel_inception_distance(real_b_feats, real_a_feats, **kid_options)
    hist = metrics.class_histogram_metrics(np.argmax(fake_logits, axis=1), classifier.num_classes)
    return {
        "fd": fd,
        "fd_baseline": fd_baseline,
        "kid": kid,
        "kid_std": kid_std,
        "kid_baseline": kid_baseline,
        "class_kl": hist["kl_to_uniform"],
        "classes_hit": hist["classes_hit"],
        "class_histogram": hist["histogram"],
        "num_samples": int(n),
        "feature_layer": classifier.feature_layer,
        "classifier_accuracy": classifier.test_accuracy,
    }
