"""Shared test setup: CPU only, rank promotion raises (nothing broadcasts by accident)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _classifier_cache(tmp_path_factory):
    """Classifiers trained by tests go to a temporary cache, never to the user's."""
    os.environ["BCE_GAN_CACHE"] = str(tmp_path_factory.mktemp("bce_gan_cache"))
