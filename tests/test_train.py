"""The train step and the host loop: invariants, determinism, resume, divergence, each dataset family."""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bce_gan import train
from bce_gan.train import TrainConfig

SMALL_TOY = {"hidden": (32, 32), "batchnorm": False, "maxout_pieces": 1, "init_std": None}
TINY_MLP = {"g_hidden": (32, 64), "d_hidden": (64, 32)}


def _state_leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def _assert_states_equal(a, b):
    for x, y in zip(_state_leaves(a), _state_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def _run_steps(config, data, num_steps):
    gan = train.create_gan(config, data.shape[1:])
    init_key, train_key, _ = train.run_keys(config.seed)
    state = jax.jit(functools.partial(train.init_state, gan))(init_key)
    run = jax.jit(functools.partial(train.train_steps, gan=gan, num_steps=num_steps))
    return gan, run(state, data, train_key)


def test_course_mlp_losses_start_near_ln2():
    config = TrainConfig(dataset="mnist", model="mlp", batch_size=128, learning_rate=1e-5)
    data = jax.random.uniform(jax.random.key(0), (512, 28, 28, 1))
    _, (_, metrics) = _run_steps(config, data, 1)
    assert abs(float(metrics["d_loss"][0]) - math.log(2)) < 0.05
    assert abs(float(metrics["g_loss"][0]) - math.log(2)) < 0.05
    assert metrics["d_loss"].shape == (1,)
    assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}


def test_discriminator_loss_falls_when_only_d_trains():
    config = TrainConfig(model_options=SMALL_TOY, batch_size=64, learning_rate=1e-3)
    gan = train.create_gan(config, (2,))
    state = train.init_state(gan, jax.random.key(0))
    # Freeze the generator through its traced learning rate; fixed batch and key = fixed fakes.
    state.g_opt_state.hyperparams["learning_rate"] = jnp.zeros(())
    batch = jax.random.normal(jax.random.key(1), (1, 64, 2)) * 0.1 + 1.0
    step = jax.jit(functools.partial(train.train_step, gan=gan))
    g_params = state.g_params
    d_losses = []
    for _ in range(30):
        state, metrics = step(state, batch, jax.random.key(2))
        d_losses.append(float(metrics["d_loss"]))
    assert d_losses[-1] < d_losses[0] - 0.1
    jax.tree.map(np.testing.assert_array_equal, state.g_params, g_params)


def test_same_seed_same_numbers_bitwise():
    config = TrainConfig(model_options=SMALL_TOY, batch_size=32, seed=3)
    data = jax.random.normal(jax.random.key(0), (256, 2))
    _, (s1, m1) = _run_steps(config, data, 5)
    _, (s2, m2) = _run_steps(config, data, 5)
    _assert_states_equal(s1, s2)
    jax.tree.map(np.testing.assert_array_equal, m1, m2)
    _, (s3, _) = _run_steps(config.replace(seed=4), data, 5)
    assert not np.array_equal(np.asarray(jax.tree.leaves(s1.g_params)[0]), np.asarray(jax.tree.leaves(s3.g_params)[0]))


def test_n_disc_and_minimax_and_smoothing_run():
    config = TrainConfig(model_options=SMALL_TOY, batch_size=16, n_disc=2, loss="minimax", label_smoothing=0.2)
    data = jax.random.normal(jax.random.key(0), (64, 2))
    _, (state, metrics) = _run_steps(config, data, 3)
    assert int(state.step) == 3
    assert float(metrics["g_loss"][0]) < 0  # the minimax form is −mean softplus(D(G(z)))
    assert np.all(np.isfinite(metrics["d_loss"]))


def _small_run_config(**overrides):
    base = dict(model_options=SMALL_TOY, batch_size=32, num_steps=40, log_every=10, checkpoint_every=20,
                num_samples=200, tensorboard=False, dataset_options={"num_samples": 2000})
    base.update(overrides)
    return TrainConfig(**base)


def test_train_and_evaluate_writes_files_and_resumes_exactly(tmp_path):
    config = _small_run_config()
    full = train.train_and_evaluate(config, str(tmp_path / "full"))
    half = tmp_path / "half"
    train.train_and_evaluate(config.replace(num_steps=20), str(half))
    resumed = train.train_and_evaluate(config, str(half))  # same workdir: resumes from step 20
    assert resumed == full
    for name in ("config.json", "metrics.jsonl", "final.json", "samples.npy", "samples_40.png"):
        assert (half / name).exists(), name
    with open(half / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    with open(tmp_path / "full" / "metrics.jsonl") as f:
        assert rows == [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    np.testing.assert_array_equal(np.load(half / "samples.npy"), np.load(tmp_path / "full" / "samples.npy"))
    assert {"modes", "high_quality", "reverse_kl"} <= set(full)
    assert (half / "samples_40.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_refuses_other_settings(tmp_path):
    train.train_and_evaluate(_small_run_config(num_steps=10), str(tmp_path))
    with pytest.raises(ValueError, match="learning_rate"):
        train.train_and_evaluate(_small_run_config(num_steps=10, learning_rate=0.1), str(tmp_path))


def test_divergence_stops_with_the_step(tmp_path):
    config = _small_run_config(learning_rate=1e30, num_steps=20, checkpoint_every=0)
    with pytest.raises(train.TrainingDiverged, match=r"diverged at step \d+") as info:
        train.train_and_evaluate(config, str(tmp_path))
    assert 0 <= info.value.step < 20


def test_freeze_on_divergence_keeps_the_chunk_start_state():
    config = TrainConfig(model_options=SMALL_TOY, batch_size=16, learning_rate=1e30)
    data = jax.random.normal(jax.random.key(0), (64, 2))
    gan = train.create_gan(config, (2,))
    start = train.init_state(gan, jax.random.key(0))
    state, metrics = jax.jit(functools.partial(train.train_steps, gan=gan, num_steps=10, freeze_on_divergence=True))(
        start, data, jax.random.key(1)
    )
    bad = train.first_bad_step(jax.device_get(metrics), 0)
    assert bad is not None and int(state.diverged_step) == bad
    assert int(state.step) == 10
    _assert_states_equal(state.replace(step=start.step, diverged_step=start.diverged_step), start)


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_size": 0},
        {"learning_rate": -1e-3},
        {"loss": "wasserstein"},
        {"dataset": "imagenet"},
        {"model": "resnet"},
        {"n_disc": 0},
        {"adam_b1": 1.0},
        {"model_options": {"widths": 3}},
    ],
)
def test_config_validation_names_the_option(overrides):
    name = next(iter(overrides))
    with pytest.raises(ValueError, match=name):
        TrainConfig(**overrides).validate()


def test_chunk_lengths_end_on_log_boundaries():
    assert train.chunk_lengths(0, 25, 10) == [10, 10, 5]
    assert train.chunk_lengths(20, 40, 10) == [10, 10]
    assert train.chunk_lengths(15, 30, 10) == [5, 10]
    assert train.chunk_lengths(30, 30, 10) == []


def test_config_round_trips_through_json():
    config = TrainConfig(model_options=SMALL_TOY, dataset_options={"radius": 2.0})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("dataset", "model", "options"),
    [("digits", "mlp", TINY_MLP), ("digits", "dcgan", {"base_width": 8}), ("grid25", "toy", SMALL_TOY)],
)
def test_few_steps_on_each_dataset_family(tmp_path, dataset, model, options):
    config = TrainConfig(dataset=dataset, model=model, model_options=options, batch_size=16, num_steps=4,
                         log_every=2, num_samples=40, tensorboard=False, data_dir=str(tmp_path / "tfds"),
                         image_metrics=model == "mlp")
    final = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert final["step"] == 4 and math.isfinite(final["d_loss"])
    assert (tmp_path / "run" / "samples_4.png").exists()
    if model == "mlp":  # images scored by the digits classifier, beside the real-vs-real baseline
        assert final["fd"] > final["fd_baseline"] > 0 and final["num_samples"] == 40
    elif model == "toy":
        assert {"modes", "high_quality", "reverse_kl"} <= set(final)


def test_few_steps_on_mocked_mnist(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = TrainConfig(dataset="mnist", model="mlp", model_options=TINY_MLP, batch_size=8, num_steps=2, image_metrics=False,
                         log_every=1, num_samples=8, tensorboard=False, data_dir=str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=32):
        final = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert final["step"] == 2 and math.isfinite(final["g_loss"])
