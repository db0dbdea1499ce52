"""Tests of bce_gan.losses against float64 NumPy / mpmath references.

The sections follow the numbered semantics of the losses spec (1: logits loss, 2: its gradient,
3: probabilities loss, 4: its gradient, 5: reductions, 6: ``where``, 7: ``pos_weight``, 8: label
smoothing, 9: dtypes, 10: shapes, 11: GAN losses, 12: jit/vmap/grad), then hypothesis properties,
agreement with optax, and the import-isolation check.

float64 is enabled per test with the ``x64`` fixture (``jax.enable_x64`` as a context manager),
never globally, so other test modules in the same (xdist worker) process keep JAX's default float32.
"""

import math
import os
import pathlib
import re
import subprocess
import sys

import hypothesis
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from jax.test_util import check_grads

from bce_gan.losses import bce, bce_with_logits, discriminator_loss, generator_loss

INF = math.inf
NAN = math.nan
LN2 = math.log(2.0)
F16_MAX = float(np.finfo(np.float16).max)  # 65504
N = 8  # the batch size of most tests: one shape keeps JAX's per-shape compile cache warm


@pytest.fixture
def x64():
    """Enables float64 for one test and restores the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


# ---------------------------------------------------------------------------------------------
# float64 / arbitrary-precision references.
# ---------------------------------------------------------------------------------------------


def _mp_softplus(x: float) -> mpmath.mpf:
    if x == INF:
        return mpmath.inf
    if x == -INF:
        return mpmath.mpf(0)
    return mpmath.log1p(mpmath.exp(mpmath.mpf(x)))


def _mp_sigmoid(x: float) -> mpmath.mpf:
    if x == INF:
        return mpmath.mpf(1)
    if x == -INF:
        return mpmath.mpf(0)
    return 1 / (1 + mpmath.exp(-mpmath.mpf(x)))


def ref_logit_loss(x: float, y: float, q: float = 1.0) -> float:
    """q·y·softplus(−x) + (1−y)·softplus(x); a term with coefficient exactly 0 is exactly 0."""
    if math.isnan(x) or math.isnan(y) or math.isnan(q):
        return NAN
    with mpmath.workdps(50):
        a, b = mpmath.mpf(q) * mpmath.mpf(y), 1 - mpmath.mpf(y)
        total = mpmath.mpf(0)
        if a != 0:
            total += a * _mp_softplus(-x)
        if b != 0:
            total += b * _mp_softplus(x)
        return float(total)


def ref_logit_grad(x: float, y: float, q: float = 1.0) -> float:
    """d/dx = σ(x)(1 + (q−1)y) − q·y."""
    with mpmath.workdps(50):
        y_, q_ = mpmath.mpf(y), mpmath.mpf(q)
        return float(_mp_sigmoid(x) * (1 + (q_ - 1) * y_) - q_ * y_)


def ref_logit_grad_labels(x: float, y: float, q: float = 1.0) -> float:
    """d/dy = q·softplus(−x) − softplus(x)."""
    with mpmath.workdps(50):
        return float(mpmath.mpf(q) * _mp_softplus(-x) - _mp_softplus(x))


def ref_logit_grad_pos_weight(x: float, y: float, q: float = 1.0) -> float:
    """d/dq = y·softplus(−x)."""
    with mpmath.workdps(50):
        return float(mpmath.mpf(y) * _mp_softplus(-x)) if y != 0 else 0.0


def ref_prob_loss(p: float, y: float) -> float:
    """−(y·max(log p, −100) + (1−y)·max(log1p(−p), −100)); NaN outside [0, 1]."""
    if math.isnan(p) or math.isnan(y) or not 0.0 <= p <= 1.0:
        return NAN
    with mpmath.workdps(50):
        p_, y_ = mpmath.mpf(p), mpmath.mpf(y)
        log_p = max(mpmath.log(p_), -100) if p_ > 0 else mpmath.mpf(-100)
        log_not_p = max(mpmath.log(1 - p_), -100) if p_ < 1 else mpmath.mpf(-100)
        total = mpmath.mpf(0)
        if y_ != 0:
            total -= y_ * log_p
        if 1 - y_ != 0:
            total -= (1 - y_) * log_not_p
        return float(total)


def ref_prob_grad(p: float, y: float) -> float:
    """−y/max(p, 1e−12) + (1−y)/max(1−p, 1e−12), zero-coefficient terms dropped."""
    with mpmath.workdps(50):
        p_, y_, eps = mpmath.mpf(p), mpmath.mpf(y), mpmath.mpf(1e-12)
        total = mpmath.mpf(0)
        if y_ != 0:
            total -= y_ / max(p_, eps)
        if 1 - y_ != 0:
            total += (1 - y_) / max(1 - p_, eps)
        return float(total)


def np_softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def np_logit_losses(x, y, q=1.0):
    """Vectorised float64 reference for finite inputs."""
    x, y, q = (np.asarray(v, np.float64) for v in (x, y, q))
    return q * y * np_softplus(-x) + (1 - y) * np_softplus(x)


def np_prob_losses(p, y):
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    with np.errstate(divide="ignore"):
        return -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))


def _f32(v: float) -> float:
    """The float64 value of v rounded to float32 (what a float32 computation actually sees)."""
    return float(np.float32(v))


def _sum_grads(fn, argnums, *args, **kwargs):
    return jax.grad(lambda *a: fn(*a, reduction="sum", **kwargs), argnums=argnums)(*args)


# ---------------------------------------------------------------------------------------------
# 1. Logits loss.
# ---------------------------------------------------------------------------------------------

# (logit x, label y, pos_weight q)
LOGIT_CASES = [
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (0.0, 0.5, 1.0),
    (2.0, 1.0, 1.0),
    (-2.0, 1.0, 1.0),
    (2.0, 0.0, 1.0),
    (20.0, 1.0, 1.0),  # tiny loss: softplus(−20) = 2.06e−9
    (-20.0, 0.0, 1.0),
    (50.0, 1.0, 1.0),  # 1.9e−22
    (-80.0, 0.0, 1.0),  # 1.8e−35
    (100.0, 0.0, 1.0),
    (-100.0, 1.0, 1.0),
    (1e-8, 1.0, 1.0),
    (-1e-8, 0.0, 1.0),
    (50.0, 0.3, 1.0),
    (-50.0, 0.3, 1.0),
    (3.0, 0.7, 2.5),
    (-3.0, 0.7, 0.5),
    (20.0, 1.0, 3.0),
    # infinities: a zero coefficient gives an exactly-zero term
    (INF, 1.0, 1.0),
    (-INF, 0.0, 1.0),
    (INF, 0.0, 1.0),
    (-INF, 1.0, 1.0),
    (INF, 0.5, 1.0),
    (-INF, 0.5, 1.0),
    (INF, 1.0, 2.0),
    (-INF, 0.0, 3.0),
    (-INF, 1.0, 0.0),  # coefficient q·y = 0
    (-INF, 0.3, 2.0),
    (INF, 0.3, 2.0),
    # NaN in, NaN out
    (NAN, 1.0, 1.0),
    (NAN, 0.0, 1.0),
    (0.5, NAN, 1.0),
]


def test_logit_loss_table_float64(x64):
    x, y, q = (jnp.asarray(c, jnp.float64) for c in zip(*LOGIT_CASES))
    got = bce_with_logits(x, y, pos_weight=q, reduction="none")
    assert got.dtype == jnp.float64
    want = np.array([ref_logit_loss(*case) for case in LOGIT_CASES])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=0)


def test_logit_loss_table_float32():
    cases = [tuple(_f32(v) for v in case) for case in LOGIT_CASES]
    x, y, q = (jnp.asarray(c, jnp.float32) for c in zip(*cases))
    got = bce_with_logits(x, y, pos_weight=q, reduction="none")
    assert got.dtype == jnp.float32
    want = np.array([ref_logit_loss(*case) for case in cases])
    np.testing.assert_allclose(np.asarray(got), want, rtol=5e-6, atol=0)


@pytest.mark.parametrize(
    ("x", "y", "want"),
    [(INF, 1.0, 0.0), (-INF, 0.0, 0.0), (INF, 0.0, INF), (-INF, 1.0, INF)],
)
def test_infinite_logits_scalar(x, y, want):
    got = bce_with_logits(jnp.float32(x), y)
    assert float(got) == want  # exactly 0 or +inf, never NaN


@pytest.mark.parametrize("x", [20.0, 50.0, 80.0])
def test_tiny_loss_keeps_relative_accuracy_float32(x):
    got = float(bce_with_logits(jnp.float32(x), 1.0))
    assert got > 0.0
    assert got == pytest.approx(math.log1p(math.exp(-x)), rel=1e-5)
    got_neg = float(bce_with_logits(jnp.float32(-x), 0.0))
    assert got_neg == pytest.approx(math.log1p(math.exp(-x)), rel=1e-5)


def test_softplus_minus_20_is_not_zero_in_float32():
    assert float(bce_with_logits(jnp.float32(20.0), 1.0)) == pytest.approx(2.0611536e-9, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# 2. Logits gradient.
# ---------------------------------------------------------------------------------------------

LOGIT_GRAD_CASES = [
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (0.0, 0.5, 2.0),
    (0.0, 0.3, 0.5),
    (1.5, 0.2, 1.0),
    (-1.5, 0.8, 3.0),
    (30.0, 1.0, 1.0),
    (-30.0, 0.0, 1.0),
    (700.0, 0.5, 1.0),
    (-700.0, 0.5, 2.0),
    (INF, 1.0, 1.0),
    (INF, 0.0, 1.0),
    (INF, 0.3, 2.0),
    (-INF, 1.0, 1.0),
    (-INF, 0.0, 1.0),
    (-INF, 0.3, 2.0),
    (-INF, 1.0, 0.0),
]


def test_logit_gradient_formula_float64(x64):
    x, y, q = (jnp.asarray(c, jnp.float64) for c in zip(*LOGIT_GRAD_CASES))
    got = _sum_grads(bce_with_logits, 0, x, y, pos_weight=q)
    want = np.array([ref_logit_grad(*case) for case in LOGIT_GRAD_CASES])
    assert np.all(np.isfinite(np.asarray(got)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-15)


def test_logit_gradient_formula_float32():
    cases = [tuple(_f32(v) for v in case) for case in LOGIT_GRAD_CASES if abs(case[0]) != 700.0]
    x, y, q = (jnp.asarray(c, jnp.float32) for c in zip(*cases))
    got = _sum_grads(bce_with_logits, 0, x, y, pos_weight=q)
    assert got.dtype == jnp.float32
    want = np.array([ref_logit_grad(*case) for case in cases])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-7)


def test_logit_gradient_mean_divides_by_m(x64):
    x = jnp.asarray([-INF, -1.0, 0.0, 2.0, INF], jnp.float64)
    y = jnp.asarray([0.0, 1.0, 0.5, 0.0, 1.0], jnp.float64)
    got = jax.grad(bce_with_logits)(x, y)
    want = np.array([ref_logit_grad(a, b) for a, b in zip(x.tolist(), y.tolist())]) / 5
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=1e-16)


def test_logit_gradient_nan_only_for_nan_input(x64):
    x = jnp.asarray([NAN, 0.0, INF, -INF], jnp.float64)
    got = np.asarray(_sum_grads(bce_with_logits, 0, x, jnp.asarray([1.0, 1.0, 0.0, 1.0])))
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], [-0.5, 1.0, -1.0], rtol=0, atol=0)


# (x, y, q), finite
LABEL_GRAD_CASES = [(0.0, 0.5, 1.0), (2.0, 0.0, 1.0), (-3.0, 1.0, 1.0), (1.5, 0.3, 2.0),
                    (-1.5, 0.8, 0.5), (25.0, 1.0, 3.0), (-25.0, 0.0, 3.0)]


def test_logit_gradient_wrt_labels_and_pos_weight(x64):
    x, y, q = (jnp.asarray(c, jnp.float64) for c in zip(*LABEL_GRAD_CASES))
    g_y, g_q = jax.grad(
        lambda y_, q_: bce_with_logits(x, y_, pos_weight=q_, reduction="sum"), argnums=(0, 1)
    )(y, q)
    want_y = np.array([ref_logit_grad_labels(*c) for c in LABEL_GRAD_CASES])
    want_q = np.array([ref_logit_grad_pos_weight(*c) for c in LABEL_GRAD_CASES])
    np.testing.assert_allclose(np.asarray(g_y), want_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(g_q), want_q, rtol=1e-12, atol=0)


def test_logit_gradient_wrt_pos_weight_at_infinite_logits(x64):
    x = jnp.asarray([INF, INF, -INF], jnp.float64)
    y = jnp.asarray([1.0, 0.3, 0.0], jnp.float64)
    g_q = jax.grad(lambda q: bce_with_logits(x, y, pos_weight=q, reduction="sum"))(
        jnp.asarray([2.0, 2.0, 2.0], jnp.float64)
    )
    np.testing.assert_array_equal(np.asarray(g_q), [0.0, 0.0, 0.0])


def test_check_grads_order_2(x64):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(0, 3, size=N))
    y = jnp.asarray(rng.uniform(0.05, 0.95, size=N))
    q = jnp.asarray(rng.uniform(0.5, 3.0, size=N))
    w = jnp.asarray(rng.uniform(0.5, 2.0, size=N))

    def f(x_, y_, q_):
        return bce_with_logits(x_, y_, pos_weight=q_, weights=w)

    # Second order, jointly on the logits, the labels and pos_weight.
    check_grads(f, (x, y, q), order=2, modes=("rev",))
    p = jax.nn.sigmoid(x)
    check_grads(lambda p_: bce(p_, y, weights=w), (p,), order=2, modes=("rev",), eps=1e-6)


def test_logit_second_derivative(x64):
    x = jnp.asarray([-INF, -40.0, -2.0, 0.0, 0.5, 3.0, 40.0, INF], jnp.float64)
    y = jnp.asarray([0.0, 0.3, 1.0, 0.5, 0.2, 0.7, 1.0, 1.0], jnp.float64)
    q = jnp.asarray([1.0, 2.0, 1.0, 3.0, 0.5, 1.0, 2.0, 1.0], jnp.float64)
    hess = jax.jit(jax.hessian(lambda x_: bce_with_logits(x_, y, pos_weight=q, reduction="sum")))(x)
    e = np.exp(-np.abs(np.asarray(x)))
    want = e / (1 + e) ** 2 * (1 + (np.asarray(q) - 1) * np.asarray(y))  # σ(x)σ(−x)(1 + (q−1)y)
    np.testing.assert_allclose(np.asarray(hess), np.diag(want), rtol=1e-12, atol=1e-16)


# ---------------------------------------------------------------------------------------------
# 3. Probabilities loss.
# ---------------------------------------------------------------------------------------------

PROB_CASES = [
    (0.5, 1.0),
    (0.5, 0.0),
    (0.99, 1.0),  # the course's example: loss near 0
    (0.01, 1.0),
    (1e-8, 1.0),  # keras' 1e-7 clip would give 16.12 instead of 18.42
    (0.3, 0.7),
    (1 - 1e-10, 0.0),
    (0.0, 1.0),  # capped at 100
    (-0.0, 1.0),
    (1.0, 0.0),
    (0.0, 0.0),  # zero coefficient: exactly 0
    (1.0, 1.0),
    (0.0, 0.5),
    (1.0, 0.5),
    (1e-50, 1.0),  # log = −115, clamped: 100
    (math.exp(-99.0), 1.0),  # just under the cap: 99
    (-0.1, 1.0),  # outside [0, 1]: NaN, no clipping
    (1.1, 0.0),
    (-1e-30, 0.0),
    (1.0 + 2.0**-52, 1.0),
    (INF, 1.0),
    (-INF, 0.0),
    (NAN, 1.0),
    (NAN, 0.0),
]


def test_prob_loss_table_float64(x64):
    p, y = (jnp.asarray(c, jnp.float64) for c in zip(*PROB_CASES))
    got = bce(p, y, reduction="none")
    assert got.dtype == jnp.float64
    want = np.array([ref_prob_loss(*case) for case in PROB_CASES])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=0)


def test_prob_loss_table_float32():
    # exp(−99) and 1e−50 are not normal float32 numbers; 1 + 2^−52 rounds to 1.
    skip = {math.exp(-99.0), 1e-50, 1.0 + 2.0**-52, -1e-30}
    cases = [tuple(_f32(v) for v in case) for case in PROB_CASES if case[0] not in skip]
    p, y = (jnp.asarray(c, jnp.float32) for c in zip(*cases))
    got = bce(p, y, reduction="none")
    assert got.dtype == jnp.float32
    want = np.array([ref_prob_loss(*case) for case in cases])
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=0)


def test_keras_clip_counterexample():
    got = float(bce(jnp.float32(1e-8), 1.0))
    assert got == pytest.approx(-math.log(1e-8), rel=1e-6)  # 18.42
    assert abs(got - (-math.log(1e-7))) > 2.0  # not keras' 16.12


@pytest.mark.parametrize("p", [-0.5, -1e-6, 1.0 + 1e-6, 2.0, INF, -INF, NAN])
def test_prob_outside_unit_interval_is_nan(p):
    for y in (0.0, 0.5, 1.0):
        assert math.isnan(float(bce(jnp.float32(p), y)))
        assert math.isnan(float(bce(jnp.asarray([0.5, p], jnp.float32), y, reduction="sum")))


# ---------------------------------------------------------------------------------------------
# 4. Probabilities gradient.
# ---------------------------------------------------------------------------------------------


def test_prob_gradient_exact_inside_eps_range(x64):
    ps = [1e-12, 1e-9, 1e-6, 0.3, 0.5, 0.9, 1 - 1e-6, 1 - 1e-12]
    ys = [0.0, 0.25, 1.0]
    cases = [(p, y) for p in ps for y in ys]
    p, y = (jnp.asarray(c, jnp.float64) for c in zip(*cases))
    got = _sum_grads(bce, 0, p, y)
    want = np.array([ref_prob_grad(*case) for case in cases])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("p", "y", "want"),
    [
        (0.0, 1.0, -1e12),
        (1e-13, 1.0, -1e12),
        (1e-300, 1.0, -1e12),
        (1.0, 0.0, 1e12),
        (0.0, 0.0, 1.0),  # the y-term has coefficient 0: dropped, not 0·inf
        (1.0, 1.0, -1.0),
        (0.0, 0.5, -0.5e12 + 0.5),
        (1.0, 0.5, 0.5e12 - 0.5),
    ],
)
def test_prob_gradient_boundary(x64, p, y, want):
    got = float(_sum_grads(bce, 0, jnp.asarray([p], jnp.float64), jnp.asarray([y]))[0])
    assert got == pytest.approx(want, rel=1e-12)


def test_prob_gradient_saturates_to_input_dtype():
    # float16: 1e12 is out of range, the gradient saturates at ±65504 instead of ±inf.
    p16 = jnp.asarray([0.0, 1.0, 0.0], jnp.float16)
    y = jnp.asarray([1.0, 0.0, 0.0])
    g16 = _sum_grads(bce, 0, p16, y)
    assert g16.dtype == jnp.float16
    np.testing.assert_array_equal(np.asarray(g16, np.float32), [-F16_MAX, F16_MAX, 1.0])
    # bfloat16 and float32 hold 1e12.
    gbf = _sum_grads(bce, 0, p16.astype(jnp.bfloat16), y)
    assert gbf.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(gbf, np.float32), [-1e12, 1e12, 1.0], rtol=1e-2)
    g32 = _sum_grads(bce, 0, p16.astype(jnp.float32), y)
    np.testing.assert_allclose(np.asarray(g32), [-1e12, 1e12, 1.0], rtol=1e-6)


def test_prob_gradient_saturates_with_weights():
    # "saturated to the input dtype's finite range: never NaN or inf for p in [0, 1]", weights too:
    # d/dp of 2·(−log p) at p = 0 is −2e12, which float16 holds only as −65504.
    p16 = jnp.asarray([0.0, 1.0], jnp.float16)
    g = jax.grad(lambda p_: bce(p_, jnp.asarray([1.0, 0.0]), weights=2.0, reduction="sum"))(p16)
    assert g.dtype == jnp.float16
    np.testing.assert_array_equal(np.asarray(g, np.float32), [-F16_MAX, F16_MAX])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_prob_gradient_never_nan_or_inf_on_unit_interval(dtype):
    info = np.finfo(dtype)
    p_vals = [0.0, float(info.smallest_subnormal), float(info.tiny), 1e-30, 1e-8, 0.5,
              float(np.nextafter(np.float32(1), np.float32(0))), 1.0]
    p = jnp.asarray(p_vals, jnp.float32).astype(dtype)
    for reduction in ("sum", "mean"):
        for y in (0.0, 0.3, 1.0):
            g = jax.grad(lambda p_: bce(p_, y, reduction=reduction))(p)
            assert g.dtype == dtype
            assert np.all(np.isfinite(np.asarray(g, np.float32))), (reduction, y, g)


def test_prob_gradient_wrt_labels(x64):
    p = jnp.asarray([0.1, 0.5, 0.9, 1e-8], jnp.float64)
    y = jnp.asarray([0.0, 0.3, 1.0, 0.5], jnp.float64)
    g_y = jax.grad(lambda y_: bce(p, y_, reduction="sum"))(y)
    want = np.log1p(-np.asarray(p)) - np.log(np.asarray(p))
    np.testing.assert_allclose(np.asarray(g_y), want, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# 5. Reductions; 6. where.
# ---------------------------------------------------------------------------------------------

KINDS = ["logits", "probs"]


def _inputs(kind, x):
    return x if kind == "logits" else jax.nn.sigmoid(x)


def _loss_fn(kind):
    return bce_with_logits if kind == "logits" else bce


def _ref_elementwise(kind, x, y):
    if kind == "logits":
        return np_logit_losses(x, y)
    return np_prob_losses(1 / (1 + np.exp(-np.asarray(x))), y)


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, size=8)
    y = rng.uniform(0, 1, size=8).round(1)
    w = rng.uniform(0.1, 3.0, size=8)
    mask = np.array([True, False, True, True, False, True, False, True])
    return x, y, w, mask


@pytest.mark.parametrize("kind", KINDS)
def test_reductions(x64, kind, batch):
    x, y, w, mask = batch
    fn = _loss_fn(kind)
    inp = _inputs(kind, jnp.asarray(x))
    losses = _ref_elementwise(kind, x, y)

    def run(**kw):
        return np.asarray(fn(inp, jnp.asarray(y), **kw))

    np.testing.assert_allclose(run(), losses.mean(), rtol=1e-13)
    np.testing.assert_allclose(run(reduction="mean"), losses.mean(), rtol=1e-13)
    np.testing.assert_allclose(run(reduction="sum"), losses.sum(), rtol=1e-13)
    np.testing.assert_allclose(run(reduction="none"), losses, rtol=1e-13)
    # weights do not change the divisor of "mean"
    np.testing.assert_allclose(run(weights=w), (w * losses).sum() / len(losses), rtol=1e-13)
    np.testing.assert_allclose(run(weights=w, reduction="sum"), (w * losses).sum(), rtol=1e-13)
    np.testing.assert_allclose(run(weights=w, reduction="none"), w * losses, rtol=1e-13)
    np.testing.assert_allclose(
        run(weights=w, reduction="weighted_mean"), (w * losses).sum() / w.sum(), rtol=1e-13
    )
    # with where: over the included elements only; "none" is 0 where excluded
    lm, wm = losses[mask], w[mask]
    np.testing.assert_allclose(run(where=mask), lm.mean(), rtol=1e-13)
    np.testing.assert_allclose(run(where=mask, weights=w), (wm * lm).sum() / mask.sum(), rtol=1e-13)
    np.testing.assert_allclose(run(where=mask, reduction="sum"), lm.sum(), rtol=1e-13)
    np.testing.assert_allclose(run(where=mask, reduction="none"), np.where(mask, losses, 0.0),
                               rtol=1e-13)
    np.testing.assert_allclose(
        run(where=mask, weights=w, reduction="weighted_mean"), (wm * lm).sum() / wm.sum(),
        rtol=1e-13,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
@pytest.mark.parametrize("poison", [False, True])
def test_empty_mean_is_zero_with_zero_gradient(kind, reduction, poison):
    x = jnp.asarray([0.5, -1.0, NAN if poison else 2.0, INF if poison else 0.0], jnp.float32)
    inp = _inputs(kind, x)
    y = jnp.asarray([1.0, 0.0, 1.0, 0.5])
    w = jnp.asarray([1.0, 2.0, NAN if poison else 1.0, 1.0])
    where = jnp.zeros(4, bool)
    fn = _loss_fn(kind)
    loss, grads = jax.value_and_grad(
        lambda i, y_, w_: fn(i, y_, weights=w_, where=where, reduction=reduction), argnums=(0, 1, 2)
    )(inp, y, w)
    assert float(loss) == 0.0
    for g in grads:
        np.testing.assert_array_equal(np.asarray(g), np.zeros(4))
    # also without weights, and a batch of size 0
    assert float(fn(inp, y, where=where, reduction=reduction)) == 0.0
    empty = jnp.zeros((0,), jnp.float32)
    loss0, g0 = jax.value_and_grad(lambda i: fn(i, empty, reduction=reduction))(empty)
    assert float(loss0) == 0.0 and g0.shape == (0,)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_reduction_lists_allowed(kind):
    with pytest.raises(ValueError) as err:
        _loss_fn(kind)(jnp.asarray([0.5]), jnp.asarray([1.0]), reduction="avg")
    for name in ("mean", "sum", "none", "weighted_mean"):
        assert name in str(err.value)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "weighted_mean"])
def test_where_masked_nan_inf_is_exactly_zero_logits(x64, reduction):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 2, size=8)
    y = rng.uniform(0, 1, size=8)
    w = rng.uniform(0.5, 2, size=8)
    q = rng.uniform(0.5, 3, size=8)
    mask = np.array([True, False, True, False, True, True, False, True])
    # poison the excluded entries of every argument
    x[~mask] = [NAN, INF, -INF]
    y[~mask] = [NAN, INF, 2.0]
    w[~mask] = [NAN, INF, -INF]
    q[~mask] = [NAN, INF, -1.0]

    def f(x_, y_, w_, q_):
        out = bce_with_logits(x_, y_, weights=w_, pos_weight=q_, where=mask, reduction=reduction)
        return jnp.sum(out) if reduction == "none" else out

    def f_sliced(x_, y_, w_, q_):
        out = bce_with_logits(x_, y_, weights=w_, pos_weight=q_, reduction=reduction)
        return jnp.sum(out)

    args = tuple(jnp.asarray(a) for a in (x, y, w, q))
    loss, grads = jax.value_and_grad(f, argnums=(0, 1, 2, 3))(*args)
    sliced = tuple(jnp.asarray(a[mask]) for a in (x, y, w, q))
    loss_s, grads_s = jax.value_and_grad(f_sliced, argnums=(0, 1, 2, 3))(*sliced)
    np.testing.assert_allclose(float(loss), float(loss_s), rtol=1e-13)
    for g, g_s in zip(grads, grads_s):
        g = np.asarray(g)
        np.testing.assert_array_equal(g[~mask], 0.0)  # exactly 0, not NaN
        np.testing.assert_allclose(g[mask], np.asarray(g_s), rtol=1e-12, atol=1e-15)
    if reduction == "none":
        out = np.asarray(bce_with_logits(*args[:2], weights=args[2], pos_weight=args[3],
                                         where=mask, reduction="none"))
        np.testing.assert_array_equal(out[~mask], 0.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "weighted_mean"])
def test_where_masked_nan_inf_is_exactly_zero_probs(x64, reduction):
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, size=N)
    y = rng.uniform(0, 1, size=N)
    w = rng.uniform(0.5, 2, size=N)
    mask = np.array([True, False, True, False, False, True, False, True])
    p[~mask] = [NAN, -0.5, 1.5, INF]
    y[~mask] = [NAN, INF, -INF, 3.0]
    w[~mask] = [NAN, INF, -INF, 1.0]

    def f(p_, y_, w_, where):
        out = bce(p_, y_, weights=w_, where=where, reduction=reduction)
        return jnp.sum(out)

    args = tuple(jnp.asarray(a) for a in (p, y, w))
    loss, grads = jax.value_and_grad(f, argnums=(0, 1, 2))(*args, mask)
    sliced = tuple(jnp.asarray(a[mask]) for a in (p, y, w))
    loss_s, grads_s = jax.value_and_grad(f, argnums=(0, 1, 2))(*sliced, None)
    np.testing.assert_allclose(float(loss), float(loss_s), rtol=1e-13)
    for g, g_s in zip(grads, grads_s):
        g = np.asarray(g)
        np.testing.assert_array_equal(g[~mask], 0.0)
        np.testing.assert_allclose(g[mask], np.asarray(g_s), rtol=1e-12, atol=1e-15)


def test_where_broadcasts_without_enlarging(x64):
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(4, 3)))
    y = jnp.asarray(rng.uniform(size=(4, 3)))
    for where in (np.array([True, False, True]), np.array([[True], [False], [True], [True]]),
                  np.array(True)):
        full = np.broadcast_to(where, (4, 3))
        got = bce_with_logits(x, y, where=where, reduction="none")
        want = bce_with_logits(x, y, where=full, reduction="none")
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert float(bce_with_logits(x, y, where=where)) == pytest.approx(
            float(np.sum(np.asarray(want)) / full.sum()), rel=1e-13
        )


# ---------------------------------------------------------------------------------------------
# 7. pos_weight.
# ---------------------------------------------------------------------------------------------


def test_pos_weight_per_class(x64):
    rng = np.random.default_rng(5)
    m, c = 5, 3
    x = rng.normal(0, 3, size=(m, c))
    x[0, 0], x[1, 1], x[2, 2] = INF, -INF, INF
    y = rng.uniform(0, 1, size=(m, c)).round(2)
    y[0, 0], y[1, 1], y[2, 2] = 1.0, 0.0, 0.4  # (inf, 1) → 0, (−inf, 0) → 0, (inf, 0.4) → inf
    q = np.array([0.5, 2.0, 4.0])
    got = bce_with_logits(jnp.asarray(x), jnp.asarray(y), pos_weight=jnp.asarray(q),
                          reduction="none")
    want = np.array([[ref_logit_loss(x[i, j], y[i, j], q[j]) for j in range(c)] for i in range(m)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=0)
    # scalar pos_weight and a (1, C) pos_weight broadcast too
    got_s = bce_with_logits(jnp.asarray(x), jnp.asarray(y), pos_weight=2.0, reduction="none")
    want_s = np.array([[ref_logit_loss(x[i, j], y[i, j], 2.0) for j in range(c)] for i in range(m)])
    np.testing.assert_allclose(np.asarray(got_s), want_s, rtol=1e-13, atol=0)
    got_1c = bce_with_logits(jnp.asarray(x), jnp.asarray(y), pos_weight=jnp.asarray(q)[None],
                             reduction="none")
    np.testing.assert_allclose(np.asarray(got_1c), want, rtol=1e-13, atol=0)
    # pos_weight = 1 is the default
    np.testing.assert_array_equal(
        np.asarray(bce_with_logits(jnp.asarray(x), jnp.asarray(y), pos_weight=1.0)),
        np.asarray(bce_with_logits(jnp.asarray(x), jnp.asarray(y))),
    )


def test_pos_weight_gradient_per_class(x64):
    rng = np.random.default_rng(6)
    x = jnp.asarray(rng.normal(0, 2, size=(4, 2)))
    y = jnp.asarray(rng.uniform(size=(4, 2)))
    q = jnp.asarray([0.5, 3.0])
    g_x, g_q = jax.grad(
        lambda x_, q_: bce_with_logits(x_, y, pos_weight=q_), argnums=(0, 1)
    )(x, q)
    xn, yn, qn = np.asarray(x), np.asarray(y), np.asarray(q)
    s = 1 / (1 + np.exp(-xn))
    np.testing.assert_allclose(np.asarray(g_x), (s * (1 + (qn - 1) * yn) - qn * yn) / 8, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_q), (yn * np_softplus(-xn)).sum(0) / 8, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# 8. Label smoothing.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ls", [0.1, 0.25, 1.0])
def test_label_smoothing(x64, ls):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(0, 2, size=N))
    y = jnp.asarray([0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.2, 0.0])
    y_s = y * (1 - ls) + ls / 2
    for fn, inp in ((bce_with_logits, x), (bce, jax.nn.sigmoid(x))):
        for reduction in ("none", "mean"):
            np.testing.assert_allclose(
                np.asarray(fn(inp, y, label_smoothing=ls, reduction=reduction)),
                np.asarray(fn(inp, y_s, reduction=reduction)), rtol=1e-13,
            )
    # smoothing comes before the zero-coefficient rule: (+inf, 1) is no longer a perfect prediction
    assert float(bce_with_logits(jnp.asarray([INF]), jnp.asarray([1.0]), label_smoothing=ls)) == INF
    assert float(bce(jnp.asarray([0.0]), jnp.asarray([0.0]), label_smoothing=ls)) == pytest.approx(
        100 * ls / 2, rel=1e-13
    )
    # d/dy carries the factor (1 − ls)
    g = jax.grad(lambda y_: bce_with_logits(x, y_, label_smoothing=ls, reduction="sum"))(y)
    np.testing.assert_allclose(np.asarray(g), -np.asarray(x) * (1 - ls), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# 9. dtypes.
# ---------------------------------------------------------------------------------------------


def test_half_inputs_compute_in_float32():
    # softplus(−20) = 2.06e−9 underflows float16; bf16 would keep 3 significant digits only.
    for dtype in (jnp.float16, jnp.bfloat16):
        loss = bce_with_logits(jnp.asarray([20.0], dtype), jnp.asarray([1.0]))
        assert loss.dtype == jnp.float32
        assert float(loss) == pytest.approx(2.0611536e-9, rel=1e-6)
        probs_loss = bce(jnp.asarray([0.25], dtype), jnp.asarray([1.0]))
        assert probs_loss.dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_gradient_dtype(dtype):
    x = jnp.asarray([-2.0, 0.0, 3.0], dtype)
    y = jnp.asarray([0.0, 1.0, 1.0], jnp.float32)
    g = jax.grad(bce_with_logits)(x, y)
    assert g.dtype == dtype
    want = (1 / (1 + np.exp(-np.asarray(x, np.float64))) - np.asarray(y)) / 3
    np.testing.assert_allclose(np.asarray(g, np.float32), want, rtol=1e-2)
    g_p = jax.grad(bce)(jnp.asarray([0.25, 0.5], dtype), jnp.asarray([1.0, 0.0]))
    assert g_p.dtype == dtype


def test_bf16_label_is_not_rounded():
    # bf16(0.999) == 1.0: casting labels to the input dtype would make (x, 0.999) a near-perfect
    # prediction. Labels must be cast to the compute dtype (float32).
    assert float(jnp.asarray(0.999, jnp.bfloat16)) == 1.0
    label = jnp.asarray([0.999], jnp.float32)
    x_bf16 = jnp.asarray([4.0], jnp.bfloat16)
    got = bce_with_logits(x_bf16, label)
    want = bce_with_logits(jnp.asarray([4.0], jnp.float32), label)
    assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    assert float(got) == pytest.approx(ref_logit_loss(4.0, _f32(0.999)), rel=1e-6)
    assert float(bce_with_logits(jnp.asarray([INF], jnp.bfloat16), label)) == INF
    p_bf16 = jnp.asarray([0.25], jnp.bfloat16)
    got_p = bce(p_bf16, label)
    assert float(got_p) == pytest.approx(ref_prob_loss(0.25, _f32(0.999)), rel=1e-6)
    assert float(got_p) != pytest.approx(math.log(4.0), rel=1e-5)


def test_labels_weights_pos_weight_cast_to_compute_dtype(x64):
    x32 = jnp.asarray([0.5, -1.0, 2.0], jnp.float32)
    y64 = jnp.asarray([1.0, 0.0, 0.3], jnp.float64)
    out = bce_with_logits(x32, y64, weights=jnp.asarray([1.0, 2.0, 3.0], jnp.float64),
                          pos_weight=jnp.asarray([2.0, 2.0, 2.0], jnp.float64))
    assert out.dtype == jnp.float32
    assert bce(jax.nn.sigmoid(x32), y64).dtype == jnp.float32
    assert bce_with_logits(x32.astype(jnp.float64), y64.astype(jnp.float32)).dtype == jnp.float64
    assert jax.grad(bce_with_logits)(x32, y64).dtype == jnp.float32


def test_integer_and_boolean_labels():
    x = jnp.asarray([0.5, -1.0, 2.0, -INF], jnp.float32)
    y_float = jnp.asarray([1.0, 0.0, 1.0, 0.0], jnp.float32)
    want = np.asarray(bce_with_logits(x, y_float, reduction="none"))
    for y in (y_float.astype(jnp.int32), y_float.astype(jnp.uint8), y_float.astype(bool)):
        np.testing.assert_array_equal(np.asarray(bce_with_logits(x, y, reduction="none")), want)
        np.testing.assert_array_equal(np.asarray(bce(jax.nn.sigmoid(x), y, reduction="none")),
                                      np.asarray(bce(jax.nn.sigmoid(x), y_float, reduction="none")))
    assert float(bce_with_logits(x, 1)) == float(bce_with_logits(x, 1.0))
    np.testing.assert_array_equal(
        np.asarray(bce_with_logits(x, y_float, weights=jnp.asarray([1, 2, 3, 4]))),
        np.asarray(bce_with_logits(x, y_float, weights=jnp.asarray([1.0, 2.0, 3.0, 4.0]))),
    )


@pytest.mark.parametrize(
    "inputs", [jnp.asarray([0, 1, 2], jnp.int32), jnp.asarray([True, False, True]), 1,
               jnp.asarray([1, 0, 1], jnp.uint8)]
)
def test_non_floating_inputs_raise_type_error(inputs):
    with pytest.raises(TypeError):
        bce_with_logits(inputs, jnp.asarray(1.0))
    with pytest.raises(TypeError):
        bce(inputs, jnp.asarray(1.0))
    with pytest.raises(TypeError):
        discriminator_loss(inputs, jnp.asarray([0.0]))
    with pytest.raises(TypeError):
        generator_loss(inputs)


# ---------------------------------------------------------------------------------------------
# 10. Shapes.
# ---------------------------------------------------------------------------------------------


def _names_shape(message: str, shape: tuple[int, ...]) -> bool:
    """True if the message names ``shape`` as a tuple ``(7, 1)``/``(7,)`` or a list ``[7, 1]``."""
    compact = re.sub(r"\s+", "", message)
    as_tuple = re.sub(r"\s+", "", str(tuple(shape)))
    as_list = "[" + ",".join(str(d) for d in shape) + "]"
    return as_tuple in compact or as_list in compact


BAD_SHAPES = [
    # (input shape, argument, argument shape)
    ((7, 1), "labels", (7,)),
    ((7,), "labels", (7, 1)),
    ((7, 1), "labels", (1, 7)),
    ((7, 1), "labels", (7, 7)),
    ((7,), "labels", (8,)),
    ((7, 1), "weights", (7,)),
    ((7, 1), "where", (7,)),
    ((7, 1), "pos_weight", (7,)),
    ((7, 3), "pos_weight", (4,)),
    ((3,), "pos_weight", (7, 3)),
]


@pytest.mark.parametrize(
    ("kind", "input_shape", "arg", "arg_shape"),
    [(kind, *case) for kind in KINDS for case in BAD_SHAPES
     if not (kind == "probs" and case[1] == "pos_weight")],  # bce has no pos_weight
)
@pytest.mark.parametrize("use_jit", [False, True])
def test_shape_mismatch_raises_naming_both_shapes(kind, input_shape, arg, arg_shape, use_jit):
    fn = _loss_fn(kind)
    inputs = jnp.full(input_shape, 0.5, jnp.float32)
    value = jnp.ones(arg_shape, bool) if arg == "where" else jnp.full(arg_shape, 0.5, jnp.float32)
    kwargs = {} if arg == "labels" else {arg: value}
    labels = value if arg == "labels" else jnp.asarray(1.0)

    def call(i, lab):
        return fn(i, lab, **kwargs)

    if use_jit:
        call = jax.jit(call)
    # Rank promotion allowed, so the check has to come from the loss, not from jax.numpy.
    with jax.numpy_rank_promotion("allow"):
        with pytest.raises(ValueError) as err:
            call(inputs, labels)
    message = str(err.value)
    assert _names_shape(message, input_shape), message
    assert _names_shape(message, arg_shape), message


@pytest.mark.parametrize("kind", KINDS)
def test_broadcasting_that_keeps_the_shape_is_fine(x64, kind):
    # Under the suite's rank_promotion="raise": the loss broadcasts explicitly.
    rng = np.random.default_rng(8)
    fn = _loss_fn(kind)
    x = rng.normal(size=(4, 3))
    inputs = _inputs(kind, jnp.asarray(x))
    y_c = rng.uniform(size=(3,))
    w_m1 = rng.uniform(0.5, 2, size=(4, 1))
    full_y = np.broadcast_to(y_c, (4, 3))
    full_w = np.broadcast_to(w_m1, (4, 3))
    want = fn(inputs, jnp.asarray(full_y), weights=jnp.asarray(full_w), reduction="none")
    got = fn(inputs, jnp.asarray(y_c), weights=jnp.asarray(w_m1), reduction="none")
    assert got.shape == (4, 3)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # scalar labels
    got_s = fn(inputs, 1.0, reduction="none")
    want_s = fn(inputs, jnp.ones((4, 3)), reduction="none")
    np.testing.assert_array_equal(np.asarray(got_s), np.asarray(want_s))
    # a (m, 1) input with (m, 1) labels keeps its shape
    assert fn(inputs[:, :1], jnp.asarray(full_y[:, :1]), reduction="none").shape == (4, 1)
    # a scalar input
    assert fn(inputs[0, 0], 1.0).shape == ()


# ---------------------------------------------------------------------------------------------
# 11. GAN losses.
# ---------------------------------------------------------------------------------------------


def test_gan_losses_start_at_ln2():
    zeros = jnp.zeros(8, jnp.float32)
    assert float(discriminator_loss(zeros, zeros)) == pytest.approx(LN2, rel=1e-6)
    assert float(generator_loss(zeros)) == pytest.approx(LN2, rel=1e-6)
    assert float(generator_loss(zeros, saturating=True)) == pytest.approx(-LN2, rel=1e-6)


@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_discriminator_loss(x64, ls):
    rng = np.random.default_rng(9)
    real = rng.normal(1, 2, size=5)
    fake = rng.normal(-1, 2, size=3)  # a different batch size
    real_term = ((1 - ls / 2) * np_softplus(-real) + ls / 2 * np_softplus(real)).mean()
    want = (real_term + np_softplus(fake).mean()) / 2
    got = discriminator_loss(jnp.asarray(real), jnp.asarray(fake), label_smoothing=ls)
    assert float(got) == pytest.approx(want, rel=1e-13)
    g_r, g_f = jax.grad(
        lambda r, f: discriminator_loss(r, f, label_smoothing=ls), argnums=(0, 1)
    )(jnp.asarray(real), jnp.asarray(fake))
    s_r, s_f = 1 / (1 + np.exp(-real)), 1 / (1 + np.exp(-fake))
    np.testing.assert_allclose(np.asarray(g_r), (s_r - (1 - ls / 2)) / 5 / 2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_f), s_f / 3 / 2, rtol=1e-12)  # fake target stays 0


def test_discriminator_loss_smoothing_is_one_sided():
    fake = jnp.asarray([-INF, -INF])
    real = jnp.asarray([INF, INF])
    assert float(discriminator_loss(real, fake)) == 0.0  # a perfect discriminator
    assert float(discriminator_loss(real, fake, label_smoothing=0.2)) == INF  # real target 0.9
    real0 = jnp.asarray([0.0, 0.0])
    # the fake term stays exactly 0 (target 0, logit −inf) with smoothing on
    got = float(discriminator_loss(real0, fake, label_smoothing=0.2))
    assert got == pytest.approx(LN2 / 2, rel=1e-6)


def test_generator_loss(x64):
    fake = np.array([-3.0, -0.5, 0.0, 1.0, 4.0])
    s = 1 / (1 + np.exp(-fake))
    f = jnp.asarray(fake)
    assert float(generator_loss(f)) == pytest.approx(np_softplus(-fake).mean(), rel=1e-13)
    saturating = float(generator_loss(f, saturating=True))
    assert saturating == pytest.approx(-np_softplus(fake).mean(), rel=1e-13)
    # minimax = mean log(1 − D(G(z))), no constant offset
    assert saturating == pytest.approx(np.log1p(-s).mean(), rel=1e-13)
    np.testing.assert_allclose(np.asarray(jax.grad(generator_loss)(f)), (s - 1) / 5, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(jax.grad(lambda v: generator_loss(v, saturating=True))(f)), -s / 5, rtol=1e-12
    )
    assert float(generator_loss(jnp.asarray([INF]))) == 0.0
    assert float(generator_loss(jnp.asarray([-INF]))) == INF
    assert float(generator_loss(jnp.asarray([-INF]), saturating=True)) == 0.0
    assert float(generator_loss(jnp.asarray([INF]), saturating=True)) == -INF


# ---------------------------------------------------------------------------------------------
# 12. jit, grad, vmap.
# ---------------------------------------------------------------------------------------------


def _np_reduce(l, w, mask, reduction):
    wl = np.where(mask, w * l, 0.0)
    if reduction == "none":
        return wl
    if reduction == "sum":
        return wl.sum()
    if reduction == "mean":
        return wl.sum() / mask.sum() if mask.sum() else 0.0
    den = np.where(mask, w, 0.0).sum()
    return wl.sum() / den if den else 0.0


def test_jit():
    rng = np.random.default_rng(10)
    x = rng.normal(0, 3, size=(4, 3)).astype(np.float32)
    y = rng.uniform(size=(4, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, size=(4, 1)).astype(np.float32)
    q = np.array([0.5, 1.0, 2.0], np.float32)
    mask = rng.uniform(size=(4, 3)) > 0.3
    reductions = ("mean", "sum", "none", "weighted_mean")

    @jax.jit
    def everything(x_, y_, w_, q_, m_):
        p_ = jax.nn.sigmoid(x_)
        out = {}
        for r in reductions:
            out["logits_" + r] = bce_with_logits(x_, y_, weights=w_, pos_weight=q_, where=m_,
                                               reduction=r, label_smoothing=0.1)
            out["probs_" + r] = bce(p_, y_, weights=w_, where=m_, reduction=r, label_smoothing=0.1)
        out["d"] = discriminator_loss(x_[0], x_[1], label_smoothing=0.1)
        out["g"] = generator_loss(x_[0])
        out["g_sat"] = generator_loss(x_[0], saturating=True)
        # grad under jit with a traced mask: no Python branch on data
        out["grad"] = jax.grad(lambda v: bce_with_logits(v, y_, where=m_))(x_)
        return out

    out = everything(*(jnp.asarray(a) for a in (x, y, w, q, mask)))
    ys = y * 0.9 + 0.05
    wf = np.broadcast_to(w, x.shape)
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    for r in reductions:
        np.testing.assert_allclose(np.asarray(out["logits_" + r]),
                                   _np_reduce(np_logit_losses(x, ys, q), wf, mask, r), rtol=2e-6)
        np.testing.assert_allclose(np.asarray(out["probs_" + r]),
                                   _np_reduce(np_prob_losses(p, ys), wf, mask, r), rtol=2e-5)
    want_d = ((0.95 * np_softplus(-x[0]) + 0.05 * np_softplus(x[0])).mean()
              + np_softplus(x[1]).mean()) / 2
    np.testing.assert_allclose(float(out["d"]), want_d, rtol=2e-6)
    np.testing.assert_allclose(float(out["g"]), np_softplus(-x[0]).mean(), rtol=2e-6)
    np.testing.assert_allclose(float(out["g_sat"]), -np_softplus(x[0]).mean(), rtol=2e-6)
    np.testing.assert_allclose(np.asarray(out["grad"]), np.where(mask, p - y, 0) / mask.sum(),
                               rtol=1e-5, atol=1e-7)
    # static options as keyword arguments of a jitted wrapper
    g_sat = jax.jit(generator_loss, static_argnames="saturating")(jnp.asarray(x[0]),
                                                                  saturating=True)
    np.testing.assert_allclose(float(g_sat), -np_softplus(x[0]).mean(), rtol=2e-6)


def test_vmap():
    rng = np.random.default_rng(11)
    b, m = 3, 5
    x = rng.normal(0, 3, size=(b, m)).astype(np.float32)
    y = rng.uniform(size=(b, m)).astype(np.float32)
    w = rng.uniform(0.5, 2, size=(b, m)).astype(np.float32)
    mask = rng.uniform(size=(b, m)) > 0.3
    mask[0] = False  # row 0: a mean over nothing
    reductions = ("mean", "weighted_mean", "sum", "none")

    @jax.jit
    def everything(x_, y_, w_, m_):
        out = {}
        for r in reductions:
            out["logits_" + r] = jax.vmap(lambda a, b_, c, d: bce_with_logits(
                a, b_, weights=c, where=d, pos_weight=2.0, reduction=r))(x_, y_, w_, m_)
            out["probs_" + r] = jax.vmap(lambda a, b_, c, d: bce(
                jax.nn.sigmoid(a), b_, weights=c, where=d, reduction=r))(x_, y_, w_, m_)
        out["grad"] = jax.vmap(jax.grad(lambda a, b_: bce_with_logits(a, b_)))(x_, y_)
        out["d"] = jax.vmap(discriminator_loss)(x_, -x_)
        out["g"] = jax.vmap(generator_loss)(x_)
        return out

    out = everything(*(jnp.asarray(a) for a in (x, y, w, mask)))
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    for r in reductions:
        refs = (("logits", np_logit_losses(x, y, 2.0)), ("probs", np_prob_losses(p, y)))
        for kind, losses in refs:
            want = np.stack([_np_reduce(losses[i], w[i], mask[i], r) for i in range(b)])
            np.testing.assert_allclose(np.asarray(out[kind + "_" + r]), want, rtol=2e-5, atol=1e-7)
            assert np.all(np.asarray(out[kind + "_" + r])[0] == 0.0)
    np.testing.assert_allclose(np.asarray(out["grad"]), (p - y) / m, rtol=1e-5, atol=1e-7)
    want_d = (np_softplus(-x).mean(1) + np_softplus(-x).mean(1)) / 2
    np.testing.assert_allclose(np.asarray(out["d"]), want_d, rtol=2e-6)
    np.testing.assert_allclose(np.asarray(out["g"]), np_softplus(-x).mean(1), rtol=2e-6)


# ---------------------------------------------------------------------------------------------
# Properties (hypothesis). Fixed shapes and eager calls: no recompilation per example.
# ---------------------------------------------------------------------------------------------

_finite = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False, width=64)
_logits = hnp.arrays(np.float64, (N,), elements=_finite)
_labels = hnp.arrays(np.float64, (N,), elements=st.floats(0.0, 1.0, width=64))
_weights = hnp.arrays(np.float64, (N,), elements=st.floats(0.1, 10.0, width=64))
_masks = hnp.arrays(np.bool_, (N,), elements=st.booleans())
_settings = hypothesis.settings(max_examples=25, deadline=None, derandomize=True,
                                suppress_health_check=[hypothesis.HealthCheck.too_slow])


@_settings
@hypothesis.given(x=_logits, y=_labels, w=_weights)
def test_property_mean_times_m_is_sum(x, y, w):
    with jax.enable_x64(True):
        for fn, inp in ((bce_with_logits, jnp.asarray(x)), (bce, jax.nn.sigmoid(jnp.asarray(x)))):
            mean = float(fn(inp, jnp.asarray(y), weights=jnp.asarray(w)))
            total = float(fn(inp, jnp.asarray(y), weights=jnp.asarray(w), reduction="sum"))
            assert mean * N == pytest.approx(total, rel=1e-12, abs=1e-300)


@_settings
@hypothesis.given(x=_logits, y=_labels, w=_weights, mask=_masks, perm=st.permutations(range(N)))
def test_property_permutation_invariance(x, y, w, mask, perm):
    perm = np.asarray(perm)
    with jax.enable_x64(True):
        for reduction in ("mean", "sum", "weighted_mean"):
            a = float(bce_with_logits(jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(w),
                                      where=mask, reduction=reduction))
            b = float(bce_with_logits(jnp.asarray(x[perm]), jnp.asarray(y[perm]),
                                      weights=jnp.asarray(w[perm]), where=mask[perm],
                                      reduction=reduction))
            assert a == pytest.approx(b, rel=1e-12, abs=1e-300)


@_settings
@hypothesis.given(
    x=hnp.arrays(np.float64, (N,), elements=st.floats(-15.0, 15.0, width=64)), y=_labels
)
def test_property_bce_of_sigmoid_matches_logits(x, y):
    with jax.enable_x64(True):
        from_logits = np.asarray(bce_with_logits(jnp.asarray(x), jnp.asarray(y), reduction="none"))
        probs = jax.nn.sigmoid(jnp.asarray(x))
        from_probs = np.asarray(bce(probs, jnp.asarray(y), reduction="none"))
    np.testing.assert_allclose(from_probs, from_logits, rtol=1e-7, atol=1e-9)


@_settings
@hypothesis.given(x=_logits, y=_labels, w=_weights, mask=_masks)
def test_property_masked_equals_sliced(x, y, w, mask):
    with jax.enable_x64(True):
        for reduction in ("mean", "sum", "weighted_mean"):
            masked = float(bce_with_logits(jnp.asarray(x), jnp.asarray(y), weights=jnp.asarray(w),
                                           where=mask, reduction=reduction))
            sliced = float(bce_with_logits(jnp.asarray(x[mask]), jnp.asarray(y[mask]),
                                           weights=jnp.asarray(w[mask]), reduction=reduction))
            assert masked == pytest.approx(sliced, rel=1e-12, abs=1e-300)


# ---------------------------------------------------------------------------------------------
# Agreement with optax where optax is right (finite logits, matching shapes).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_agrees_with_optax(dtype, rtol):
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.normal(0, 4, size=27), [-30.0, -10.0, 0.0, 10.0, 30.0]]).astype(dtype)
    y = np.concatenate([rng.uniform(size=16), rng.integers(0, 2, size=16)]).astype(dtype)

    @jax.jit
    def both(x_, y_):
        ours, g_ours = jax.value_and_grad(bce_with_logits)(x_, y_)
        theirs, g_theirs = jax.value_and_grad(
            lambda v: optax.sigmoid_binary_cross_entropy(v, y_).mean())(x_)
        return (bce_with_logits(x_, y_, reduction="none"),
                optax.sigmoid_binary_cross_entropy(x_, y_), ours, theirs, g_ours, g_theirs)

    with jax.enable_x64(dtype == np.float64):
        out = both(jnp.asarray(x), jnp.asarray(y))
        none_ours, none_theirs, ours, theirs, g_ours, g_theirs = out
        assert none_ours.dtype == none_theirs.dtype == dtype
    np.testing.assert_allclose(np.asarray(none_ours), np.asarray(none_theirs), rtol=rtol, atol=0)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=rtol * 10)
    np.testing.assert_allclose(np.asarray(g_ours), np.asarray(g_theirs), rtol=rtol * 10,
                               atol=float(np.finfo(dtype).eps) / len(x))


# ---------------------------------------------------------------------------------------------
# Import isolation: the losses need jax alone.
# ---------------------------------------------------------------------------------------------

HEAVY_MODULES = ("flax", "optax", "tensorflow_datasets", "tensorflow", "orbax", "matplotlib",
                 "tensorboardX", "sklearn", "tqdm", "ml_collections")


def test_import_pulls_in_no_training_stack():
    code = (
        "import sys\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "for module in ('bce_gan', 'bce_gan.losses'):\n"
        "    __import__(module)\n"
        "    print(module, sorted({n.split('.')[0] for n in sys.modules} & set(heavy)))\n"
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, cwd=root, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["bce_gan []", "bce_gan.losses []"], result.stdout
