"""Tests of bce_gan.classifier: training, the weight cache and the classifier-based image metrics.

The digits classifier is trained once per session (about 10 s on 2 CPU cores) into a temporary
cache; MNIST runs only on ``tfds.testing.mock_data`` with a tiny config.
"""

import dataclasses
import json
import math

import numpy as np
import pytest

from bce_gan import classifier as clf_lib
from bce_gan.data import load_dataset

tfds = pytest.importorskip("tensorflow_datasets")

METRIC_KEYS = {
    "fd", "fd_baseline", "kid", "kid_std", "kid_baseline", "class_kl", "classes_hit",
    "class_histogram", "num_samples", "feature_layer", "classifier_accuracy",
}


@pytest.fixture(scope="module")
def digits_env(tmp_path_factory):
    """(data_dir, cache_dir, classifier): digits prepared and its default classifier trained once."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    cache_dir = str(tmp_path_factory.mktemp("classifiers"))
    classifier = clf_lib.load_or_train_classifier("digits", cache_dir=cache_dir, data_dir=data_dir)
    return data_dir, cache_dir, classifier


@pytest.fixture(scope="module")
def digits_test(digits_env):
    return load_dataset("digits", "test", data_dir=digits_env[0])


def test_default_configs():
    digits = clf_lib.default_config("digits")
    assert digits.conv_features == () and digits.dense_features == (256, 128)
    assert digits.num_epochs == 60 and digits.image_shape == (8, 8, 1)
    cnn_shapes = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
    for name, shape in cnn_shapes.items():
        config = clf_lib.default_config(name)
        assert config.conv_features == (32, 64) and config.dense_features == (128,)
        assert config.image_shape == shape
    assert clf_lib.default_config("mnist").num_epochs == 3
    with pytest.raises(ValueError, match="no classifier"):
        clf_lib.default_config("ring8")


def test_config_hash_depends_on_every_field():
    base = clf_lib.default_config("digits")
    assert base.config_hash() == clf_lib.default_config("digits").config_hash()
    assert base.config_hash() != dataclasses.replace(base, num_epochs=59).config_hash()
    assert base.config_hash() != dataclasses.replace(base, seed=1).config_hash()


def test_digits_accuracy_and_cache_files(digits_env):
    _, cache_dir, classifier = digits_env
    assert classifier.test_accuracy >= 0.97
    folder = f"{cache_dir}/digits-{clf_lib.default_config('digits').config_hash()}"
    with open(f"{folder}/info.json") as f:
        info = json.load(f)
    assert info["test_accuracy"] == classifier.test_accuracy
    assert info["num_train"] == 1497 and info["num_test"] == 300
    assert info["feature_layer"] == classifier.feature_layer == "dense_1/relu (128)"
    assert info["config"] == clf_lib.default_config("digits").to_dict()


def test_second_load_hits_cache(digits_env, digits_test, monkeypatch):
    data_dir, cache_dir, classifier = digits_env

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the classifier is cached")

    monkeypatch.setattr(clf_lib, "train_classifier", no_training)
    loaded = clf_lib.load_or_train_classifier("digits", cache_dir=cache_dir, data_dir=data_dir)
    assert loaded.test_accuracy == classifier.test_accuracy
    np.testing.assert_array_equal(loaded.features(digits_test.x), classifier.features(digits_test.x))
    assert np.mean(loaded.predict(digits_test.x) == digits_test.labels) == classifier.test_accuracy


def test_features_and_predict_shapes(digits_env, digits_test):
    classifier = digits_env[2]
    x = digits_test.x[:37]  # not a multiple of the batch size: padded, then cut
    feats = classifier.features(x, (0.0, 1.0), batch_size=16)
    assert feats.shape == (37, 128) and feats.dtype == np.float32 and feats.min() >= 0.0
    np.testing.assert_allclose(feats, classifier.features(x)[:37], rtol=1e-5, atol=1e-6)
    labels = classifier.predict(x)
    assert labels.shape == (37,) and np.issubdtype(labels.dtype, np.integer)
    assert classifier.num_classes == 10 and classifier.value_range == (0.0, 1.0)
    with pytest.raises(ValueError, match="images must be"):
        classifier.features(np.zeros((3, 8, 8)))


def test_real_digits_match_their_baseline(digits_env):
    data_dir, _, classifier = digits_env
    train = load_dataset("digits", "train", data_dir=data_dir)
    result = clf_lib.image_metrics(train.x, "digits", classifier=classifier, data_dir=data_dir)
    assert set(result) == METRIC_KEYS
    assert result["num_samples"] == 150  # half of the 300 test images
    assert result["feature_layer"] == classifier.feature_layer
    assert result["classifier_accuracy"] == classifier.test_accuracy
    assert result["fd"] < 2.0 * result["fd_baseline"]
    assert result["kid"] < 2.0 * result["kid_baseline"] + 1.0
    assert result["classes_hit"] == 10 and result["class_kl"] < 0.1
    assert all(math.isfinite(result[k]) for k in ("fd", "kid", "kid_std", "kid_baseline"))


def test_noise_and_blank_images_score_badly(digits_env):
    data_dir, _, classifier = digits_env
    train = load_dataset("digits", "train", data_dir=data_dir)
    real = clf_lib.image_metrics(train.x, "digits", classifier=classifier, data_dir=data_dir)
    noise = np.random.default_rng(0).uniform(size=(300, 8, 8, 1)).astype(np.float32)
    blank = np.zeros((300, 8, 8, 1), np.float32)
    for fake in (noise, blank):
        result = clf_lib.image_metrics(fake, "digits", classifier=classifier, data_dir=data_dir)
        assert result["fd_baseline"] == real["fd_baseline"]  # the baseline depends on the seed only
        assert result["fd"] > 10.0 * real["fd_baseline"]
        assert result["kid"] > 10.0 * (abs(real["kid"]) + abs(real["kid_baseline"]))
        assert result["classes_hit"] < real["classes_hit"]
        assert result["class_kl"] > real["class_kl"] + 0.5
    assert clf_lib.image_metrics(blank, "digits", classifier=classifier, data_dir=data_dir)[
        "classes_hit"
    ] == 1


def test_value_range_is_undone(digits_env):
    data_dir, _, classifier = digits_env
    train = load_dataset("digits", "train", data_dir=data_dir)
    x01 = train.x[:200]
    unit = clf_lib.image_metrics(x01, "digits", classifier=classifier, data_dir=data_dir)
    signed = clf_lib.image_metrics(
        2.0 * x01 - 1.0, "digits", classifier=classifier, data_dir=data_dir, value_range=(-1.0, 1.0)
    )
    for key in ("fd", "fd_baseline", "kid", "kid_baseline", "class_kl"):
        assert signed[key] == pytest.approx(unit[key], rel=1e-4, abs=1e-6), key
    assert signed["class_histogram"] == unit["class_histogram"]


def test_num_samples_caps_the_count(digits_env, digits_test):
    data_dir, _, classifier = digits_env
    result = clf_lib.image_metrics(
        digits_test.x, "digits", classifier=classifier, data_dir=data_dir, num_samples=40,
        kid_subset_size=20,
    )
    assert result["num_samples"] == 40 and sum(result["class_histogram"]) == 40
    with pytest.raises(ValueError, match="samples must be"):
        clf_lib.image_metrics(
            np.zeros((10, 28, 28, 1)), "digits", classifier=classifier, data_dir=data_dir
        )


def test_mnist_mock_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "default_tfds"))
    config = clf_lib.ClassifierConfig(
        "mnist", (28, 28, 1), 10, conv_features=(4,), dense_features=(8,), batch_size=16,
        num_epochs=1,
    )
    data_dir, cache_dir = str(tmp_path / "tfds"), str(tmp_path / "cache")
    with tfds.testing.mock_data(num_examples=32):
        classifier = clf_lib.load_or_train_classifier(
            "mnist", config=config, cache_dir=cache_dir, data_dir=data_dir
        )
        test = load_dataset("mnist", "test", data_dir=data_dir, value_range=(-1.0, 1.0))
        result = clf_lib.image_metrics(
            test.x, "mnist", classifier=classifier, data_dir=data_dir, value_range=(-1.0, 1.0),
        )
    assert 0.0 <= classifier.test_accuracy <= 1.0  # meaningless on mock data; only recorded
    with open(f"{cache_dir}/mnist-{config.config_hash()}/info.json") as f:
        info = json.load(f)
    assert info["test_accuracy"] == classifier.test_accuracy and info["num_train"] == 32
    assert classifier.features(test.x, (-1.0, 1.0)).shape == (32, 8)
    assert set(result) == METRIC_KEYS and result["num_samples"] == 16
    assert result["feature_layer"] == "dense_0/relu (8)"
    assert math.isfinite(result["fd"]) and math.isfinite(result["kid"])
