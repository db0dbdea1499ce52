"""Tests for bce_gan.models: shapes, ranges, dtypes, packing, init, the functional split/merge, the factory.

Compiles are the cost on CPU: exact layer shapes of the full-size networks are checked on abstract
models (``nnx.eval_shape``, no compile); everything that runs uses tiny widths, each model is built once
per module, and each forward pass is one jitted function.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from bce_gan import models

BATCH_SIZE = 8
IMAGE_SHAPES = [(28, 28, 1), (32, 32, 3), (8, 8, 1)]

# Tiny options per model for the tests that run the networks.
SMALL_OPTIONS = {
    "mlp": {"hidden": (16,)},
    "dcgan": {"base_width": 4},
    "toy": {"hidden": (16, 16), "pack": 2},
}
CASES = [  # the MLP on 8x8x1 runs in test_bfloat16_computes_in_bfloat16_on_float32_params
    ("mlp", (28, 28, 1)),
    *[("dcgan", shape) for shape in IMAGE_SHAPES],
    ("toy", (2,)),
]


def _case_id(case):
    model, shape = case
    return f"{model}-{'x'.join(map(str, shape))}"


@functools.cache
def _models(model, data_shape, seed=0):
    """A (generator, discriminator) pair built once per module; tests must not call them eagerly in
    training mode (that would update their batch statistics): use ``_forward``."""
    return models.create_models(model, data_shape, rngs=nnx.Rngs(seed), **SMALL_OPTIONS[model])


@functools.partial(jax.jit, static_argnums=(0, 4))
def _apply(graphdef, params, rest, x, use_running_average):
    merged = nnx.merge(graphdef, params, rest)
    out = merged(x, use_running_average=use_running_average)
    _, _, new_rest = nnx.split(merged, nnx.Param, ...)
    return out, new_rest


def _forward(module, x, use_running_average=None):
    """Runs ``module(x)`` the way the training code does: split outside, merge inside jit.

    Returns:
        ``(output, rest_before, rest_after)``, the non-parameter state before and after the call.
    """
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    out, new_rest = _apply(graphdef, params, rest, x, use_running_average)
    return out, rest, new_rest


@functools.cache
def _latents(z_dim):
    return models.sample_latent(jax.random.key(1), BATCH_SIZE, z_dim)


def _np(x):
    """A float32 NumPy copy (checks in NumPy compile nothing)."""
    return np.asarray(x[...] if isinstance(x, nnx.Variable) else x).astype(np.float32)


def _all_finite(x):
    return bool(np.isfinite(_np(x)).all())


def _kernels(layers):
    return [layer.kernel.shape for layer in layers]


def _variables(state):
    return jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, nnx.Variable))


# ---------------------------------------------------------------------------------------------
# Exact architectures (abstract: no compile)
# ---------------------------------------------------------------------------------------------


def test_course_mlp_has_exact_layer_shapes():
    g, d = nnx.eval_shape(lambda: models.create_models("mlp", (28, 28, 1), rngs=nnx.Rngs(0)))

    assert g.z_dim == 64
    assert _kernels([*g.hidden_layers, g.output_layer]) == [
        (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 784)
    ]
    assert [layer.bias.shape for layer in g.hidden_layers] == [(128,), (256,), (512,), (1024,)]
    assert [(n.scale.shape, n.mean.shape) for n in g.norms] == [((w,), (w,)) for w in (128, 256, 512, 1024)]
    assert _kernels([*d.hidden_layers, d.output_layer]) == [(784, 512), (512, 256), (256, 128), (128, 1)]
    assert not _variables(nnx.state(d, nnx.BatchStat))


def test_pacgan_toy_defaults_have_exact_layer_shapes():
    g = nnx.eval_shape(lambda: models.ToyGenerator(rngs=nnx.Rngs(0)))
    d = nnx.eval_shape(lambda: models.ToyDiscriminator(pack=3, rngs=nnx.Rngs(0)))

    assert _kernels([*g.hidden_layers, g.output_layer]) == [
        (2, 400), (400, 400), (400, 400), (400, 400), (400, 2)
    ]
    assert [n.mean.shape for n in g.norms] == [(400,)] * 4
    # maxout: 200 units x 5 pieces; packing 3 samples of 2-D points gives 6 inputs.
    assert _kernels([*d.hidden_layers, d.output_layer]) == [(6, 1000), (200, 1000), (200, 1000), (200, 1)]


def test_small_sweep_toy_configuration_has_no_batchnorm():
    g, d = nnx.eval_shape(
        lambda: models.create_models(
            "toy", (2,), rngs=nnx.Rngs(0), hidden=(128, 128), batchnorm=False, maxout_pieces=1, init_std=None
        )
    )

    assert _kernels([*g.hidden_layers, g.output_layer]) == [(2, 128), (128, 128), (128, 2)]
    assert _kernels([*d.hidden_layers, d.output_layer]) == [(2, 128), (128, 128), (128, 1)]
    _, _, g_rest = nnx.split(g, nnx.Param, ...)
    assert not _variables(g_rest)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_dcgan_discriminator_batchnorm_only_on_inner_layers(batchnorm):
    d = nnx.eval_shape(lambda: models.DCGANDiscriminator((32, 32, 3), base_width=4, batchnorm=batchnorm,
                                                         rngs=nnx.Rngs(0)))

    assert _kernels(d.conv_layers) == [(4, 4, 3, 4), (4, 4, 4, 8), (4, 4, 8, 16)]
    assert d.output_layer.kernel.shape == (4 * 4 * 16, 1)
    assert [n.mean.shape for n in d.norms] == ([(8,), (16,)] if batchnorm else [])


# ---------------------------------------------------------------------------------------------
# Every model and image shape: shapes, dtypes, ranges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_generator_and_discriminator_shapes_dtypes_ranges(case):
    model, data_shape = case
    g, d = _models(model, data_shape)
    z = _latents(models.default_z_dim(model))

    g_def, g_params, g_rest = nnx.split(g, nnx.Param, ...)
    d_def, d_params, d_rest = nnx.split(d, nnx.Param, ...)

    @jax.jit
    def gan_forward(g_params, g_rest, d_params, d_rest, z):
        fake = nnx.merge(g_def, g_params, g_rest)(z)
        return fake, nnx.merge(d_def, d_params, d_rest)(fake)

    fake, fake_logits = gan_forward(g_params, g_rest, d_params, d_rest, z)

    assert fake.shape == (BATCH_SIZE, *data_shape)
    assert fake.dtype == jnp.float32
    assert _all_finite(fake)
    value_range = models.output_range(model)
    if value_range is not None:
        low, high = value_range
        assert _np(fake).min() >= low and _np(fake).max() <= high
    pack = d.pack if model == "toy" else 1
    assert fake_logits.shape == (BATCH_SIZE // pack,)
    assert fake_logits.dtype == jnp.float32
    assert _all_finite(fake_logits)


@pytest.mark.parametrize("shape", [(16, 16, 1), (28, 32, 1), (28, 28), (64, 64, 3), (32, 32, 0)])
def test_dcgan_rejects_unsupported_shapes(shape):
    for build in (
        lambda: models.DCGANGenerator(64, shape, rngs=nnx.Rngs(0)),
        lambda: models.DCGANDiscriminator(shape, rngs=nnx.Rngs(0)),
        lambda: models.create_models("dcgan", shape, rngs=nnx.Rngs(0)),
    ):
        with pytest.raises(ValueError) as info:
            build()
        message = str(info.value)
        assert str(shape) in message
        assert all(f"({s}, {s}, C)" in message for s in (8, 28, 32))


def test_inputs_of_the_wrong_shape_raise():
    g, d = _models("mlp", (28, 28, 1))
    with pytest.raises(ValueError, match=r"\[B, 28, 28, 1\].*\(8, 27, 27, 1\)"):
        d(np.zeros((8, 27, 27, 1), np.float32))
    with pytest.raises(ValueError, match=r"\[B, 64\]"):
        g(np.zeros((8, 2), np.float32))


# ---------------------------------------------------------------------------------------------
# Toy discriminator: packing, maxout
# ---------------------------------------------------------------------------------------------


def test_packing_concatenates_consecutive_samples():
    packed = models.ToyDiscriminator(2, pack=3, hidden=(16, 16), rngs=nnx.Rngs(0))
    wide = models.ToyDiscriminator(6, pack=1, hidden=(16, 16), rngs=nnx.Rngs(1))
    nnx.update(wide, nnx.state(packed))  # same parameter shapes: 3 x 2 inputs == 6 inputs
    x = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)

    packed_logits, _, _ = _forward(packed, x)
    wide_logits, _, _ = _forward(wide, x.reshape(4, 6))

    assert packed_logits.shape == (4,)
    np.testing.assert_allclose(packed_logits, wide_logits, rtol=1e-6)


@pytest.mark.parametrize("batch_size, pack", [(10, 3), (5, 2)])
def test_packing_rejects_indivisible_batch(batch_size, pack):
    d = models.ToyDiscriminator(pack=pack, hidden=(16, 16), rngs=nnx.Rngs(0))
    x = np.zeros((batch_size, 2), np.float32)
    with pytest.raises(ValueError, match=rf"B={batch_size}.*pack={pack}"):
        d(x)
    with pytest.raises(ValueError, match=rf"B={batch_size}.*pack={pack}"):
        _forward(d, x)  # a trace-time error


def _reference_toy_logits(d, x, pack, pieces, negative_slope):
    """Float64 NumPy reference, written from the definition (maxout units take consecutive pieces)."""
    h = np.asarray(x, np.float64).reshape(x.shape[0] // pack, -1)
    for layer in d.hidden_layers:
        h = h @ np.asarray(layer.kernel[...], np.float64) + np.asarray(layer.bias[...], np.float64)
        if pieces > 1:
            h = h.reshape(h.shape[0], h.shape[1] // pieces, pieces).max(axis=-1)
        else:
            h = np.where(h >= 0, h, negative_slope * h)
    out = d.output_layer
    return (h @ np.asarray(out.kernel[...], np.float64) + np.asarray(out.bias[...], np.float64))[:, 0]


@pytest.mark.parametrize("pieces, negative_slope", [(5, 0.2), (1, 0.2), (1, 0.05)])
def test_toy_discriminator_matches_numpy_reference(pieces, negative_slope):
    pack = 2
    d = models.ToyDiscriminator(
        2, pack=pack, hidden=(16, 16), maxout_pieces=pieces, negative_slope=negative_slope, init_std=0.5,
        rngs=nnx.Rngs(3),
    )
    x = np.random.default_rng(4).normal(size=(6, 2)).astype(np.float32)

    logits, _, _ = _forward(d, x)

    assert logits.shape == (3,)
    np.testing.assert_allclose(logits, _reference_toy_logits(d, x, pack, pieces, negative_slope), rtol=1e-5,
                               atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Functional use: split once, merge in jit; BatchNorm modes
# ---------------------------------------------------------------------------------------------


def test_split_merge_round_trip_updates_batch_stats_in_training_mode():
    g, _ = _models("mlp", (28, 28, 1))
    graphdef, params, rest = nnx.split(g, nnx.Param, ...)
    z = _latents(64)

    assert all(isinstance(v, nnx.BatchStat) for v in _variables(rest))
    assert len(_variables(rest)) == 2 * len(g.hidden_layers)  # mean and var per BatchNorm
    assert all(isinstance(v, nnx.Param) for v in _variables(params))

    fake, rest_before, rest_after = _forward(g, z)

    # The state keeps its structure and dtypes, so it can be a scan carry; the running averages moved.
    assert jax.tree.structure(rest_after) == jax.tree.structure(rest_before)
    assert [v.dtype for v in _variables(rest_after)] == [v.dtype for v in _variables(rest_before)]
    moved = [not np.allclose(a[...], b[...]) for a, b in zip(_variables(rest_after), _variables(rest_before))]
    assert all(moved)
    assert fake.shape == (BATCH_SIZE, 28, 28, 1)
    # merge then split gives back the same graphdef and state.
    graphdef_again, params_again, rest_again = nnx.split(nnx.merge(graphdef, params, rest), nnx.Param, ...)
    assert graphdef_again == graphdef
    for a, b in zip(_variables((params_again, rest_again)), _variables((params, rest))):
        np.testing.assert_array_equal(a[...], b[...])


def test_running_averages_make_samples_independent_of_the_batch():
    g, _ = _models("mlp", (28, 28, 1))
    z = _latents(64)

    train_full, _, _ = _forward(g, z)
    train_head, _, _ = _forward(g, z[:2])
    call_full, rest_before, rest_after = _forward(g, z, use_running_average=True)
    eval_head, _, _ = _forward(nnx.view(g, use_running_average=True), z[:2])

    # Training mode normalises with the batch's statistics: a sample depends on its batch.
    assert not np.allclose(train_full[:2], train_head, atol=1e-4)
    # Running averages (by call argument or by a view of the module): it does not, and nothing updates.
    np.testing.assert_allclose(call_full[:2], eval_head, rtol=1e-5, atol=1e-6)
    for a, b in zip(_variables(rest_after), _variables(rest_before)):
        np.testing.assert_array_equal(a[...], b[...])


def test_eval_and_train_switch_the_graphdef_not_the_state():
    g = nnx.eval_shape(lambda: models.ToyGenerator(hidden=(4,), rngs=nnx.Rngs(0)))
    train_def, train_params, train_rest = nnx.split(g, nnx.Param, ...)
    g.eval()
    eval_def, eval_params, eval_rest = nnx.split(g, nnx.Param, ...)
    assert g.norms[0].use_running_average
    g.train()
    assert not g.norms[0].use_running_average

    assert eval_def != train_def
    assert jax.tree.structure(eval_params) == jax.tree.structure(train_params)
    assert jax.tree.structure(eval_rest) == jax.tree.structure(train_rest)


def test_gradients_flow_through_merge():
    g, d = _models("dcgan", (8, 8, 1))
    g_def, g_params, g_rest = nnx.split(g, nnx.Param, ...)
    d_def, d_params, d_rest = nnx.split(d, nnx.Param, ...)
    z = _latents(64)

    @jax.jit
    def g_loss_and_rests(g_params, g_rest, d_params, d_rest, z):
        def loss_fn(g_params):
            # copy=True: fresh Variables in this trace (the BatchStats are updated inside jax.grad).
            g_merged = nnx.merge(g_def, g_params, g_rest, copy=True)
            d_merged = nnx.merge(d_def, d_params, d_rest, copy=True)
            fake_logits = d_merged(g_merged(z))
            rests = (nnx.split(g_merged, nnx.Param, ...)[2], nnx.split(d_merged, nnx.Param, ...)[2])
            return jnp.mean(jax.nn.softplus(-fake_logits)), rests

        return jax.grad(loss_fn, has_aux=True)(g_params)

    g_grads, (new_g_rest, new_d_rest) = g_loss_and_rests(g_params, g_rest, d_params, d_rest, z)

    assert jax.tree.structure(g_grads) == jax.tree.structure(g_params)
    assert all(_all_finite(v) for v in _variables(g_grads))
    assert any(np.abs(_np(v)).max() > 0 for v in _variables(g_grads))
    assert jax.tree.structure(new_g_rest) == jax.tree.structure(g_rest)
    assert jax.tree.structure(new_d_rest) == jax.tree.structure(d_rest)


# ---------------------------------------------------------------------------------------------
# Precision and initialisation
# ---------------------------------------------------------------------------------------------


def test_bfloat16_computes_in_bfloat16_on_float32_params():
    g, d = models.create_models("mlp", (8, 8, 1), rngs=nnx.Rngs(0), hidden=(16,), dtype=jnp.bfloat16)
    z = _latents(64)

    assert {v.dtype for v in _variables(nnx.state(g)) + _variables(nnx.state(d))} == {jnp.dtype(jnp.float32)}
    fake, rest_before, rest_after = _forward(g, z)
    fake_logits, _, _ = _forward(d, fake)

    assert fake.shape == (BATCH_SIZE, 8, 8, 1) and fake.dtype == jnp.bfloat16
    assert _np(fake).min() >= 0 and _np(fake).max() <= 1
    assert fake_logits.dtype == jnp.float32 and fake_logits.shape == (BATCH_SIZE,)
    assert _all_finite(fake_logits)
    assert [v.dtype for v in _variables(rest_after)] == [v.dtype for v in _variables(rest_before)]
    # Every matmul takes bfloat16 operands.
    graphdef, params, rest = nnx.split(g, nnx.Param, ...)
    jaxpr = jax.make_jaxpr(lambda p, r, z: nnx.merge(graphdef, p, r)(z))(params, rest, z)
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 2
    assert all(v.aval.dtype == jnp.bfloat16 for e in dots for v in e.invars)


def test_dtype_option_accepts_a_name():
    g = nnx.eval_shape(lambda: models.ToyGenerator(hidden=(4,), dtype="bfloat16", rngs=nnx.Rngs(0)))
    assert g.hidden_layers[0].dtype == jnp.bfloat16
    assert g.hidden_layers[0].kernel.dtype == jnp.float32


def test_init_std_gives_normal_weights_and_zero_biases():
    g, d = _models("toy", (2,))  # init_std=0.02 by default
    kernel = _np(d.hidden_layers[1].kernel)  # 16 x 80
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
    for module in (g, d):
        assert all(not np.any(layer.bias[...]) for layer in [*module.hidden_layers, module.output_layer])

    # DCGAN: N(0, 0.02) too.
    dcgan_g, dcgan_d = _models("dcgan", (32, 32, 3))
    for kernel in (dcgan_g.projection.kernel, dcgan_d.conv_layers[2].kernel):
        assert abs(_np(kernel).std() - 0.02) < 0.002


def test_init_std_none_keeps_flax_default_init_and_mlp_uses_torch_init():
    # Toy with init_std=None: LeCun normal (std 1/sqrt(fan_in)).
    g = models.ToyGenerator(64, 1, hidden=(16,), batchnorm=False, init_std=None, rngs=nnx.Rngs(0))
    kernel = g.hidden_layers[0].kernel
    fan_in = kernel.shape[0]
    assert abs(_np(kernel).std() - fan_in**-0.5) < 0.15 * fan_in**-0.5
    # The course MLP: PyTorch's nn.Linear default, weights and biases U(±1/sqrt(fan_in)).
    _, mlp_d = _models("mlp", (28, 28, 1))
    layer = mlp_d.hidden_layers[0]
    bound = layer.kernel.shape[0] ** -0.5
    for values in (_np(layer.kernel), _np(layer.bias)):
        assert np.abs(values).max() <= bound
        assert abs(values.std() - bound / np.sqrt(3)) < 0.15 * bound / np.sqrt(3)


def test_same_seed_same_parameters():
    first = nnx.state(models.ToyDiscriminator(pack=2, hidden=(16, 16), rngs=nnx.Rngs(0)), nnx.Param)
    second = nnx.state(models.ToyDiscriminator(pack=2, hidden=(16, 16), rngs=nnx.Rngs(0)), nnx.Param)
    other = nnx.state(models.ToyDiscriminator(pack=2, hidden=(16, 16), rngs=nnx.Rngs(1)), nnx.Param)
    for a, b in zip(_variables(first), _variables(second)):
        np.testing.assert_array_equal(a[...], b[...])
    first_kernel, other_kernel = (_np(state["hidden_layers"][0]["kernel"]) for state in (first, other))
    assert not np.array_equal(first_kernel, other_kernel)


def test_sample_latent():
    z = models.sample_latent(jax.random.key(0), BATCH_SIZE, 64)
    assert z.shape == (BATCH_SIZE, 64) and z.dtype == jnp.float32
    assert abs(_np(z).mean()) < 0.15 and abs(_np(z).std() - 1) < 0.15
    assert models.sample_latent(jax.random.key(0), BATCH_SIZE, 64, jnp.bfloat16).dtype == jnp.bfloat16


# ---------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------


def test_factory_tables():
    assert models.MODEL_NAMES == ("mlp", "dcgan", "toy")
    assert [models.default_z_dim(m) for m in models.MODEL_NAMES] == [64, 64, 2]
    assert [models.output_range(m) for m in models.MODEL_NAMES] == [(0.0, 1.0), (-1.0, 1.0), None]
    with pytest.raises(ValueError, match="mlp, dcgan, toy"):
        models.output_range("vae")
    with pytest.raises(ValueError, match="mlp, dcgan, toy"):
        models.default_z_dim("vae")


def test_factory_routes_options_by_prefix():
    g, d = nnx.eval_shape(
        lambda: models.create_models(
            "toy", (3,), rngs=nnx.Rngs(0), z_dim=5, hidden=(8, 8), d_hidden=(6,), pack=4, batchnorm=False,
            maxout_pieces=1, negative_slope=0.1, init_std=None,
        )
    )
    assert (g.z_dim, g.out_dim, g.hidden, g.batchnorm) == (5, 3, (8, 8), False)
    assert (d.in_dim, d.hidden, d.pack, d.maxout_pieces, d.negative_slope) == (3, (6,), 4, 1, 0.1)

    g, d = nnx.eval_shape(
        lambda: models.create_models("dcgan", (8, 8, 1), rngs=nnx.Rngs(0), base_width=2, d_base_width=3,
                                     batchnorm=False)
    )
    assert (g.z_dim, g.base_width, d.base_width, d.batchnorm) == (64, 2, 3, False)

    g, d = nnx.eval_shape(lambda: models.create_models("mlp", (4, 4, 1), rngs=nnx.Rngs(0), hidden=(8,)))
    assert (g.z_dim, g.hidden, d.hidden) == (64, (8,), (8,))


@pytest.mark.parametrize(
    "model, data_shape, options, named",
    [
        ("gan", (28, 28, 1), {}, "'gan'"),
        ("mlp", (28, 28, 1), {"pack": 2}, "'pack'"),
        ("mlp", (28, 28, 1), {"hidden_sizes": (8,)}, "'hidden_sizes'"),
        ("dcgan", (28, 28, 1), {"maxout_pieces": 3}, "'maxout_pieces'"),
        ("toy", (2,), {"g_pack": 2}, "'g_pack'"),
        ("toy", (2,), {"d_batchnorm": True}, "'d_batchnorm'"),
    ],
)
def test_factory_rejects_unknown_models_and_options(model, data_shape, options, named):
    with pytest.raises(ValueError) as info:
        models.create_models(model, data_shape, rngs=nnx.Rngs(0), **options)
    message = str(info.value)
    assert named in message
    if model in models.MODEL_NAMES:
        assert ", ".join(models.allowed_options(model)) in message
    else:
        assert "mlp, dcgan, toy" in message


def test_factory_rejects_image_shapes_for_toy():
    with pytest.raises(ValueError, match=r"\(28, 28, 1\)"):
        models.create_models("toy", (28, 28, 1), rngs=nnx.Rngs(0))
