"""Populations: a member trains exactly as it would alone; divergence stays with its member; sharding."""

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from bce_gan import population, train
from bce_gan.train import TrainConfig

SMALL_TOY = {"hidden": (32, 32), "batchnorm": False, "maxout_pieces": 1, "init_std": None}
STEPS = 12


def _member_configs(learning_rates, seeds):
    base = TrainConfig(model_options=SMALL_TOY, batch_size=16)
    return [base.replace(learning_rate=lr, seed=s) for lr, s in zip(learning_rates, seeds, strict=True)]


@pytest.fixture(scope="module")
def data():
    return jax.random.normal(jax.random.key(0), (256, 2))


def _solo(config, data):
    gan = train.create_gan(config, (2,))
    init_key, train_key, _ = train.run_keys(config.seed)
    state = train.init_state(gan, init_key)
    return jax.jit(functools.partial(train.train_steps, gan=gan, num_steps=STEPS))(state, data, train_key)


def _population(configs, data, executor):
    gan = train.create_gan(configs[0], (2,))
    states = population.init_population(gan, configs)
    keys = jax.numpy.stack([train.run_keys(c.seed)[1] for c in configs])
    return population.make_population_steps(gan, STEPS, executor)(states, data, keys)


@pytest.mark.parametrize("executor", ["map", "vmap"])
def test_member_equals_solo_run(data, executor):
    configs = _member_configs([1e-3, 3e-3], [0, 1])
    states, metrics = _population(configs, data, executor)
    for i, config in enumerate(configs):
        solo_state, solo_metrics = _solo(config, data)
        member = jax.tree.map(lambda x: x[i], states)
        # Tolerance 1e-5 after 12 steps: XLA fuses a member's step inside lax.map or vmap differently
        # from the solo program, so float32 results may differ in the last bits (~1e-9 seen).
        tol = 1e-5
        for a, b in zip(jax.tree.leaves(member.g_params), jax.tree.leaves(solo_state.g_params), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)
        np.testing.assert_allclose(metrics["d_loss"][i], solo_metrics["d_loss"], rtol=tol, atol=tol)
        assert int(member.diverged_step) == -1


def test_divergence_is_isolated(data):
    configs = _member_configs([1e-3, 1e30], [0, 0])
    states, _ = _population(configs, data, "map")
    assert int(states.diverged_step[0]) == -1
    assert 0 <= int(states.diverged_step[1]) < STEPS
    solo_state, _ = _solo(configs[0], data)
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[0], states.d_params)), jax.tree.leaves(solo_state.d_params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    diverged = jax.tree.leaves(jax.tree.map(lambda x: x[1], states.g_params))
    assert all(np.all(np.isfinite(np.asarray(x))) for x in diverged)


def test_members_with_other_shapes_are_refused(tmp_path):
    configs = [TrainConfig(model_options=SMALL_TOY, batch_size=16), TrainConfig(model_options=SMALL_TOY, batch_size=32)]
    with pytest.raises(ValueError, match="share every option"):
        population.train_population(configs, [str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "p"))


def test_executor_choice():
    course = train.create_gan(TrainConfig(dataset="mnist", model="mlp", batch_size=128), (28, 28, 1))
    assert population.choose_executor(course, platform="cpu") == "map"
    assert population.choose_executor(course, platform="gpu") == "vmap"
    assert population.choose_executor(course, "vmap", platform="cpu") == "vmap"
    with pytest.raises(ValueError, match="executor"):
        population.choose_executor(course, "pmap")


def test_loop_executor_equals_solo(data):
    configs = _member_configs([1e-3, 3e-3], [0, 1])
    states, metrics = _population(configs, data, "loop")
    solo_state, solo_metrics = _solo(configs[1], data)
    np.testing.assert_array_equal(metrics["d_loss"][1], solo_metrics["d_loss"])  # the solo program itself
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[1], states.g_params)), jax.tree.leaves(solo_state.g_params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, re, jax, numpy as np
    from bce_gan import population, train
    from bce_gan.train import TrainConfig
    assert len(jax.devices()) == 8, jax.devices()
    base = TrainConfig(model_options={"hidden": (32, 32), "batchnorm": False, "maxout_pieces": 1, "init_std": None}, batch_size=16)
    configs = [base.replace(learning_rate=lr, seed=s) for lr in (1e-3, 3e-3) for s in range(4)]
    gan = train.create_gan(configs[0], (2,))
    data = jax.random.normal(jax.random.key(0), (256, 2))
    keys = jax.numpy.stack([train.run_keys(c.seed)[1] for c in configs])
    out = {"auto": {f"{p}/{m}/{spec}": train.describe_mesh(population.population_mesh(p, m, spec))
                    for p, m, spec in ((8, 16, None), (3, 16, None), (2, 16, "data=2"), (2, 6, "auto"), (1, 16, None))}}
    for executor in ("vmap", "map"):
        plain, _ = population.make_population_steps(gan, 10, executor)(population.init_population(gan, configs), data, keys)
        for spec in ("members=8", "members=4,data=2", "members=2,data=4"):
            mesh = population.population_mesh(len(configs), 16, spec)
            run = population.make_population_steps(gan, 10, executor, mesh)
            sharded = population._shard(population.init_population(gan, configs), mesh)
            shard_keys = population._shard(keys, mesh)
            hlo = run.lower(sharded, data, shard_keys).compile().as_text()
            states, _ = run(sharded, data, shard_keys)
            diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                       for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(plain)))
            rows = 16 // mesh.shape["data"]
            out[f"{executor} {spec}"] = dict(
                diff=diff, devices=len(states.step.sharding.device_set), all_reduce="all-reduce" in hlo,
                # the first hidden layer's activations per device: [m / data, 32]
                shard_rows=bool(re.search(rf"f32\\[(\\d+,)?{rows},32\\]", hlo)) and (rows == 16 or not re.search(r"f32\\[(\\d+,)?16,32\\]", hlo)),
            )
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def sharded_results():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("executor", ["vmap", "map"])
@pytest.mark.parametrize("spec", ["members=8", "members=4,data=2", "members=2,data=4"])
def test_members_x_data_mesh_equals_unsharded(sharded_results, executor, spec):
    # Not bitwise once m is split: the means over m become sums of per-device partial sums.
    result = sharded_results[f"{executor} {spec}"]
    print(f"{executor} {spec}: max state difference to the unsharded population {result['diff']:.1e}")  # pytest -s
    assert result["diff"] < 1e-5, result
    assert result["devices"] == 8
    assert result["all_reduce"] == ("data=" in spec)  # only a data axis needs communication
    assert result["shard_rows"]


def test_population_mesh_default_split(sharded_results):
    assert sharded_results["auto"] == {
        "8/16/None": "members=8,data=1 (8 cpu devices)",  # members first: no communication
        "3/16/None": "members=3,data=2 (6 cpu devices)",  # then the data axis from what is left
        "2/16/data=2": "members=2,data=2 (4 cpu devices)",
        "2/6/auto": "members=2,data=3 (6 cpu devices)",
        "1/16/None": "members=1,data=8 (8 cpu devices)",
    }


def test_population_mesh_is_validated():
    with pytest.raises(ValueError, match="members=3 does not divide the population's 4 members"):
        population.population_mesh(4, 16, "members=3")
    with pytest.raises(ValueError, match="needs 2 devices, and 1 are visible"):
        population.population_mesh(4, 16, "members=2")
    assert population.population_mesh(4, 16, None) is None  # one device here
