"""Scale-out: data parallelism over a ``data`` mesh axis (8 forced CPU devices in a subprocess), bfloat16
compute, and the ``experiments.device_check`` record."""

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from bce_gan import train
from bce_gan.train import TrainConfig

SMALL_TOY = {"hidden": (32, 32), "batchnorm": False, "maxout_pieces": 1, "init_std": None}

# Runs in a fresh process with 8 CPU devices. For the small toy GAN with and without BatchNorm:
# 5 steps at m=64 with mesh="data=8" against the same 5 steps without a mesh; then one
# train_and_evaluate with the mesh, resumed from its checkpoint.
_MESH_SCRIPT = textwrap.dedent(
    """
    import functools, json, sys, jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    from bce_gan import train
    from bce_gan.train import TrainConfig
    assert jax.device_count() == 8, jax.devices()
    data = jax.random.normal(jax.random.key(0), (512, 2))
    out = {}
    for name, batchnorm in (("plain", False), ("batchnorm", True)):
        options = {"hidden": (32, 32), "batchnorm": batchnorm, "maxout_pieces": 1, "init_std": None}
        config = TrainConfig(model_options=options, batch_size=64, seed=1)
        runs = {}
        for mesh_option in (None, "data=8"):
            c = config.replace(mesh=mesh_option).validate()
            gan = train.create_gan(c, (2,))
            mesh = train.create_mesh(c)
            init_key, train_key, _ = train.run_keys(c.seed)
            state = train.replicate(jax.jit(functools.partial(train.init_state, gan))(init_key), mesh)
            run = train.compile_train_steps(gan, 5, mesh)
            hlo = run.lower(state, train.replicate(data, mesh), train_key).compile().as_text()
            state, metrics = run(state, train.replicate(data, mesh), train_key)
            runs[mesh_option] = (state, metrics, hlo)
        (s0, m0, h0), (s1, m1, h1) = runs[None], runs["data=8"]
        leaves = {}
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(s0), jax.tree.leaves(s1)):
            leaves[jax.tree_util.keystr(path)] = float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
        out[name] = dict(
            leaves=leaves,
            metrics=max(float(np.max(np.abs(np.asarray(m0[k]) - np.asarray(m1[k])))) for k in m0),
            all_reduce=(h0.count("all-reduce"), h1.count("all-reduce")),
            # per-device activations of the first hidden layer: [64/8, 32] with the mesh, [64, 32] without
            shard_shapes=("f32[8,32]" in h1, "f32[64,32]" in h1, "f32[64,32]" in h0),
            replicated=all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 8 for x in jax.tree.leaves(s1)),
        )
    config = TrainConfig(model_options={"hidden": (32, 32), "batchnorm": True, "maxout_pieces": 1, "init_std": None},
                         batch_size=64, num_steps=6, log_every=3, checkpoint_every=3, num_samples=64,
                         tensorboard=False, mesh="data=8")
    train.train_and_evaluate(config.replace(num_steps=3), sys.argv[1])
    final = train.train_and_evaluate(config, sys.argv[1])
    out["end_to_end"] = dict(step=final["step"], finite=bool(np.isfinite(final["d_loss"])))
    print(json.dumps(out))
    """
)

# Leaves whose gradient is exactly zero in exact arithmetic: the bias of a Linear layer feeding a
# BatchNorm (the normalisation subtracts it again). Their gradient is rounding noise (~1e-9), which Adam
# turns into steps of up to ~learning_rate each (m / sqrt(v) of noise is ~±1); the two programs sum in a
# different order, so their noise, and these biases, differ by up to num_steps x learning_rate. The
# running means include those biases.
_NOISE_DRIVEN = ("g_params['hidden_layers'][0]['bias']", "g_params['hidden_layers'][1]['bias']",
                 "g_rest['norms'][0]['mean']", "g_rest['norms'][1]['mean']")


@pytest.fixture(scope="module")
def mesh_results(tmp_path_factory):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    workdir = str(tmp_path_factory.mktemp("mesh_run"))
    result = subprocess.run([sys.executable, "-c", _MESH_SCRIPT, workdir], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_data_parallel_equals_one_device_without_batchnorm(mesh_results):
    # Not bitwise: the means over m are sums of 8 per-device partial sums (all-reduce), added in another
    # order than one device's sum. Measured: max 3e-8 over every state leaf after 5 steps.
    result = mesh_results["plain"]
    assert max(result["leaves"].values()) < 1e-5, result["leaves"]
    assert result["metrics"] < 1e-5


def test_data_parallel_with_batchnorm_keeps_global_statistics(mesh_results):
    # The losses would not agree to 1e-5 with per-device BatchNorm statistics (8 examples each); with
    # global ones they agree to rounding (measured 2e-7). Measured on the state: 4e-5 at most outside _NOISE_DRIVEN (Adam's first steps
    # divide by sqrt(v), amplifying rounding differences of small gradients), 1.7e-3 inside it.
    result = mesh_results["batchnorm"]
    assert result["metrics"] < 1e-5
    leaves = {k.lstrip(".").removesuffix(".value"): v for k, v in result["leaves"].items()}
    assert set(_NOISE_DRIVEN) <= set(leaves)
    assert max(v for k, v in leaves.items() if k not in _NOISE_DRIVEN) < 2e-4, leaves
    lr, steps = TrainConfig().learning_rate, 5
    assert max(leaves[k] for k in _NOISE_DRIVEN) < 2 * steps * lr


@pytest.mark.parametrize("name", ["plain", "batchnorm"])
def test_data_parallel_really_splits_the_batch(mesh_results, name):
    result = mesh_results[name]
    no_mesh, with_mesh = result["all_reduce"]
    assert no_mesh == 0 and with_mesh > 0  # the means over m are all-reduced across devices
    assert result["shard_shapes"] == [True, False, True]  # activations are [m/8, 32] per device
    assert result["replicated"]  # every state leaf on all 8 devices


def test_data_parallel_train_and_evaluate_resumes(mesh_results):
    assert mesh_results["end_to_end"] == {"step": 6, "finite": True}


def test_mesh_option_is_validated():
    with pytest.raises(ValueError, match=r"batch_size=30 is not divisible by the data axis \(data=8\)"):
        TrainConfig(batch_size=30, mesh="data=8").validate()
    for bad in ("data", "data=0", "model=2", "data=x", "data=2,data=2", "members=2;data=2", "", 4):
        with pytest.raises(ValueError, match="mesh="):
            TrainConfig(mesh=bad).validate()
    with pytest.raises(ValueError, match="needs 2 devices, and 1 are visible"):
        TrainConfig(batch_size=64, mesh="data=2").validate()
    assert TrainConfig(mesh="data=1").validate().mesh == "data=1"
    assert train.parse_mesh("members=2, data=4") == {"members": 2, "data": 4}
    assert train.parse_mesh("auto") == train.parse_mesh(None) == {}
    with pytest.raises(ValueError, match="a members axis is for sweeps"):
        train.create_mesh(TrainConfig(mesh="members=1").replace(mesh="members=2"))
    assert train.create_mesh(TrainConfig(mesh="auto")) is None  # one device: nothing to split
    assert train.describe_mesh(train.create_mesh(TrainConfig(mesh="data=1"))) == "data=1 (1 cpu device)"


def test_compute_dtype_is_validated():
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        TrainConfig(compute_dtype="float16").validate()
    with pytest.raises(ValueError, match="compute_dtype"):
        TrainConfig(compute_dtype="bfloat16", model_options={"dtype": "bfloat16"}).validate()


def test_bfloat16_compute_tracks_float32():
    data = jax.random.normal(jax.random.key(0), (512, 2)) * 0.1 + 1.0
    out = {}
    for dtype in ("float32", "bfloat16"):
        config = TrainConfig(model_options=SMALL_TOY, batch_size=64, compute_dtype=dtype).validate()
        gan = train.create_gan(config, (2,))
        init_key, train_key, _ = train.run_keys(config.seed)
        state = jax.jit(functools.partial(train.init_state, gan))(init_key)
        run = train.compile_train_steps(gan, 50)
        hlo = run.lower(state, data, train_key).as_text()
        state, metrics = run(state, data, train_key)
        out[dtype] = (state, {k: np.asarray(v) for k, v in metrics.items()}, hlo)
    (_, m32, hlo32), (state16, m16, hlo16) = out["float32"], out["bfloat16"]
    assert "bf16" in hlo16 and "bf16" not in hlo32  # the matmuls really run in bfloat16
    for params in (state16.g_params, state16.d_params, state16.g_opt_state, state16.d_opt_state):
        assert all(x.dtype in (np.float32, np.int32) for x in jax.tree.leaves(params))
    assert all(v.dtype == np.float32 for v in m16.values())
    for name in ("d_loss", "g_loss"):
        assert np.all(np.isfinite(m16[name]))
        # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.002); losses near ln 2 differ by
        # ~0.001-0.002 per step after 50 steps from the same seed (measured 1.7e-3 at most). 0.02: 10x margin.
        assert abs(float(m16[name][-1]) - float(m32[name][-1])) < 0.02
        assert float(np.max(np.abs(m16[name] - m32[name]))) < 0.02


def test_device_check_writes_its_record(tmp_path, capsys):
    from experiments import device_check  # noqa: PLC0415

    out = tmp_path / "record.json"
    record = device_check.main(["--steps", "3", "--repeats", "1", "--batch-sizes", "16", "--num-examples", "64",
                                "--sweep-steps", "4", "--sweep-learning-rates", "1e-3", "--sweep-batch-sizes", "16",
                                "--workdir", str(tmp_path / "sweep"), "--out", str(out)])
    assert "devices: [" in capsys.readouterr().out
    assert json.loads(out.read_text()) == record
    assert record["platform"] == "cpu" and record["device_count"] >= 1 and record["device_kind"]
    assert record["jax_version"] == jax.__version__ and record["date"]
    assert set(record["steps_per_s"]) == {"16"} and record["steps_per_s"]["16"] > 0
    assert record["sweep"]["wall_time_s"] > 0 and record["sweep"]["num_steps"] == 4
    assert (tmp_path / "sweep" / "results.csv").exists()
