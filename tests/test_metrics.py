"""Tests for bce_gan.metrics: mixture mode metrics (jax) and image feature metrics (numpy)."""

import functools
import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bce_gan import metrics

# --------------------------------------------------------------------------------------
# Part A: mode_metrics
# --------------------------------------------------------------------------------------

NUM_MODES = 8
RING_RADIUS = 2.0
STD = 0.02


def _ring_modes(num_modes=NUM_MODES, radius=RING_RADIUS):
    angles = 2 * np.pi * np.arange(num_modes) / num_modes
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=-1).astype(np.float32)


MODES_Kx2 = _ring_modes()

# One compile per input shape for the whole module: std is a traced argument.
_jit_mode_metrics = jax.jit(functools.partial(metrics.mode_metrics, threshold=3.0))


def _reference_mode_metrics(samples, modes, std, threshold=3.0):
    """Float64 NumPy reference, written independently (loops, explicit entropy)."""
    samples = np.asarray(samples, np.float64)
    modes = np.asarray(modes, np.float64)
    num_modes = modes.shape[0]
    counts = np.zeros(num_modes)
    for x in samples:
        if not np.all(np.isfinite(x)):
            continue
        dists = np.linalg.norm(modes - x, axis=-1)
        k = int(np.argmin(dists))
        if dists[k] <= threshold * std:
            counts[k] += 1
    total = counts.sum()
    if total == 0:
        return {"modes": 0, "high_quality": 0.0, "reverse_kl": math.log(num_modes), "flag": True}
    p = counts[counts > 0] / total
    entropy = -np.sum(p * np.log(p))
    return {
        "modes": int(np.sum(counts > 0)),
        "high_quality": total / len(samples),
        "reverse_kl": math.log(num_modes) - entropy,
        "flag": False,
    }


def _assert_matches_reference(out, ref, atol=1e-5):
    assert int(out["modes"]) == ref["modes"]
    assert bool(out["no_high_quality"]) == ref["flag"]
    np.testing.assert_allclose(float(out["high_quality"]), ref["high_quality"], atol=atol)
    np.testing.assert_allclose(float(out["reverse_kl"]), ref["reverse_kl"], atol=atol)


def _all_on_mode_zero(n=80):
    return np.tile(MODES_Kx2[:1], (n, 1))


def _exactly_uniform(per_mode=10):
    return np.repeat(MODES_Kx2, per_mode, axis=0)


def _far_away(n=80):
    return np.full((n, 2), 100.0, np.float32)


@pytest.mark.parametrize(
    "name, samples, expected",
    [
        ("all_on_mode_0", _all_on_mode_zero(),
         dict(modes=1, high_quality=1.0, reverse_kl=math.log(NUM_MODES), flag=False)),
        ("exactly_uniform", _exactly_uniform(),
         dict(modes=NUM_MODES, high_quality=1.0, reverse_kl=0.0, flag=False)),
        ("far_away", _far_away(),
         dict(modes=0, high_quality=0.0, reverse_kl=math.log(NUM_MODES), flag=True)),
        ("half_far_half_on_two_modes",
         np.concatenate([_far_away(40), np.repeat(MODES_Kx2[:2], 20, axis=0)]),
         dict(modes=2, high_quality=0.5, reverse_kl=math.log(NUM_MODES) - math.log(2),
              flag=False)),
    ],
)
def test_mode_metrics_hand_built(name, samples, expected):
    out = _jit_mode_metrics(jnp.asarray(samples), jnp.asarray(MODES_Kx2), STD)
    assert out["modes"].dtype == jnp.int32
    assert out["no_high_quality"].dtype == jnp.bool_
    assert int(out["modes"]) == expected["modes"], name
    assert bool(out["no_high_quality"]) == expected["flag"], name
    np.testing.assert_allclose(float(out["high_quality"]), expected["high_quality"], atol=1e-6)
    np.testing.assert_allclose(float(out["reverse_kl"]), expected["reverse_kl"], atol=1e-6)


def test_mode_metrics_threshold_boundary_is_inclusive():
    # std 0.5 and threshold 3 give radius 1.5 exactly in float32.
    modes = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    just_outside = np.nextafter(np.float32(1.5), np.float32(2.0))
    samples = np.array(
        [[1.5, 0.0], [0.0, -1.5], [11.5, 0.0], [just_outside, 0.0]], np.float32
    )
    out = metrics.mode_metrics(samples, modes, 0.5)
    np.testing.assert_allclose(float(out["high_quality"]), 0.75)
    assert int(out["modes"]) == 2
    # Two samples on mode 0, one on mode 1: KL = log 2 - H(2/3, 1/3).
    p = np.array([2 / 3, 1 / 3])
    np.testing.assert_allclose(
        float(out["reverse_kl"]), math.log(2) + np.sum(p * np.log(p)), atol=1e-6
    )
    # A larger threshold takes in the sample just outside.
    out = metrics.mode_metrics(samples, modes, 0.5, threshold=3.01)
    np.testing.assert_allclose(float(out["high_quality"]), 1.0)


def test_mode_metrics_nan_and_inf_samples_are_not_high_quality():
    samples = np.concatenate([
        np.full((10, 2), np.nan, np.float32),
        np.array([[np.inf, 0.0], [-np.inf, np.nan]], np.float32),
        np.repeat(MODES_Kx2[:4], 3, axis=0),
    ])
    out = _jit_mode_metrics(samples, MODES_Kx2, STD)
    for key, value in out.items():
        assert not np.isnan(np.asarray(value, np.float64)).any(), key
    np.testing.assert_allclose(float(out["high_quality"]), 12 / 24, atol=1e-6)
    assert int(out["modes"]) == 4
    np.testing.assert_allclose(
        float(out["reverse_kl"]), math.log(NUM_MODES) - math.log(4), atol=1e-6
    )

    all_nan = metrics.mode_metrics(np.full((5, 2), np.nan, np.float32), MODES_Kx2, STD)
    assert bool(all_nan["no_high_quality"])
    np.testing.assert_allclose(float(all_nan["reverse_kl"]), math.log(NUM_MODES), atol=1e-6)
    assert float(all_nan["high_quality"]) == 0.0


def test_mode_metrics_vmap_over_sample_sets_matches_single_calls():
    n = 80
    batch_Bxnx2 = np.stack([
        _all_on_mode_zero(n),
        _exactly_uniform(n // NUM_MODES),
        _far_away(n),
        np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32),
    ])
    batched = jax.jit(jax.vmap(metrics.mode_metrics, in_axes=(0, None, None)))(
        batch_Bxnx2, MODES_Kx2, STD
    )
    assert batched["modes"].shape == (4,)
    for b in range(batch_Bxnx2.shape[0]):
        single = _jit_mode_metrics(batch_Bxnx2[b], MODES_Kx2, STD)
        for key in single:
            np.testing.assert_allclose(np.asarray(batched[key][b]), np.asarray(single[key]),
                                       atol=1e-6, err_msg=key)
    # vmap over std too (e.g. one mixture width per population member).
    stds = jnp.array([STD, STD, 100.0, STD])
    batched_std = jax.vmap(metrics.mode_metrics, in_axes=(0, None, 0))(
        batch_Bxnx2, MODES_Kx2, stds
    )
    assert not bool(batched_std["no_high_quality"][2])


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
@hypothesis.given(
    seed=st.integers(0, 2**31 - 1),
    spread=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
    num_active=st.integers(1, NUM_MODES),
)
def test_mode_metrics_matches_float64_reference(seed, spread, num_active):
    rng = np.random.default_rng(seed)
    n = 200
    centers = MODES_Kx2[rng.integers(0, num_active, size=n)]
    samples = (centers + spread * STD * rng.normal(size=(n, 2))).astype(np.float32)
    out = _jit_mode_metrics(samples, MODES_Kx2, STD)
    _assert_matches_reference(out, _reference_mode_metrics(samples, MODES_Kx2, STD))
    assert 0 <= int(out["modes"]) <= NUM_MODES
    assert 0.0 <= float(out["high_quality"]) <= 1.0
    assert 0.0 <= float(out["reverse_kl"]) <= math.log(NUM_MODES) + 1e-6
    # Permuting the samples changes nothing.
    permuted = _jit_mode_metrics(samples[rng.permutation(n)], MODES_Kx2, STD)
    for key in out:
        np.testing.assert_allclose(np.asarray(permuted[key]), np.asarray(out[key]), atol=1e-6)


@pytest.mark.parametrize(
    "samples_shape, modes_shape, std_shape",
    [((10,), (8, 2), ()), ((10, 2), (8, 3), ()), ((10, 2), (0, 2), ()), ((10, 2), (8, 2), (1,))],
)
def test_mode_metrics_rejects_bad_shapes(samples_shape, modes_shape, std_shape):
    with pytest.raises(ValueError):
        metrics.mode_metrics(np.zeros(samples_shape), np.zeros(modes_shape), np.ones(std_shape))


# --------------------------------------------------------------------------------------
# Part B: image feature metrics
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaussian_features():
    """Two independent [1000, 8] samples of the same correlated Gaussian, plus noise."""
    rng = np.random.default_rng(1234)
    d = 8
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    mean = rng.normal(size=d)
    a = rng.normal(size=(1000, d)) @ mixing + mean
    b = rng.normal(size=(1000, d)) @ mixing + mean
    noise = rng.normal(size=(1000, d))
    return a, b, noise


def _random_psd(rng, d, rank=None):
    rank = d if rank is None else rank
    a = rng.normal(size=(d, rank))
    return a @ a.T / rank + (1e-1 * np.eye(d) if rank == d else 0.0)


def test_feature_statistics_matches_numpy_and_accepts_jax(gaussian_features):
    a, _, _ = gaussian_features
    mu, cov = metrics.feature_statistics(jnp.asarray(a, jnp.float32))
    assert mu.dtype == np.float64 and cov.dtype == np.float64
    assert mu.shape == (8,) and cov.shape == (8, 8)
    a32 = np.asarray(a, np.float32).astype(np.float64)
    np.testing.assert_allclose(mu, a32.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(a32, rowvar=False, ddof=1), rtol=1e-10, atol=1e-12)
    # d = 1 stays [1, 1].
    mu1, cov1 = metrics.feature_statistics(np.array([[1.0], [3.0]]))
    np.testing.assert_allclose(mu1, [2.0])
    np.testing.assert_allclose(cov1, [[2.0]])
    with pytest.raises(ValueError):
        metrics.feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        metrics.feature_statistics(np.zeros(5))


def test_frechet_distance_identical_sets_is_zero(gaussian_features):
    a, _, _ = gaussian_features
    a = 10.0 * a
    mu, cov = metrics.feature_statistics(a)
    scale = float(np.trace(cov))
    fd = metrics.frechet_distance(mu, cov, mu, cov)
    assert 0.0 <= fd < 1e-6 * scale
    # A singular covariance (d > n) too: no complex parts, no NaN, still ~0.
    few = np.random.default_rng(0).normal(size=(5, 20))
    mu_s, cov_s = metrics.feature_statistics(few)
    fd_s = metrics.frechet_distance(mu_s, cov_s, mu_s, cov_s)
    assert 0.0 <= fd_s < 1e-6 * float(np.trace(cov_s))


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    fd = metrics.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    np.testing.assert_allclose(fd, expected, rtol=1e-10)


def test_frechet_distance_commuting_covariances_closed_form():
    # C1 = Q diag(a) Q^T and C2 = Q diag(b) Q^T commute: FD = |dmu|^2 + sum (sqrt a - sqrt b)^2.
    rng = np.random.default_rng(1)
    d = 7
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.05, 4.0, size=d), rng.uniform(0.05, 4.0, size=d)
    c1, c2 = (q * a) @ q.T, (q * b) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, c1, mu2, c2), expected, rtol=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_on_well_conditioned_case():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    d = 10
    c1, c2 = _random_psd(rng, d), _random_psd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = scipy_linalg.sqrtm(c1 @ c2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2.0 * covmean)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, c1, mu2, c2), expected, rtol=1e-8)


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True)
@hypothesis.given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 12),
                  rank=st.integers(1, 12))
def test_frechet_distance_symmetric_and_nonnegative(seed, d, rank):
    rng = np.random.default_rng(seed)
    rank = min(rank, d)
    c1, c2 = _random_psd(rng, d, rank), _random_psd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    fd12 = metrics.frechet_distance(mu1, c1, mu2, c2)
    fd21 = metrics.frechet_distance(mu2, c2, mu1, c1)
    assert fd12 >= 0.0
    np.testing.assert_allclose(fd12, fd21, rtol=1e-7, atol=1e-9)


def test_frechet_distance_rejects_bad_inputs():
    with pytest.raises(ValueError):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        metrics.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="negative"):  # not a covariance matrix
        metrics.frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), -np.eye(2))


def _fd_between(x, y):
    return metrics.frechet_distance(*metrics.feature_statistics(x), *metrics.feature_statistics(y))


def test_fd_and_kid_worse_for_shifted_and_increase_with_noise(gaussian_features):
    real, fake, noise = gaussian_features
    levels = [0.0, 0.5, 1.0, 2.0]
    fds = [_fd_between(real, fake + level * noise) for level in levels]
    kids = [
        metrics.kernel_inception_distance(real, fake + level * noise, num_subsets=5,
                                          subset_size=500)[0]
        for level in levels
    ]
    assert all(x < y for x, y in zip(fds, fds[1:])), fds
    assert all(x < y for x, y in zip(kids, kids[1:])), kids

    shifted = fake + 1.0
    assert _fd_between(real, shifted) > _fd_between(real, fake)
    kid_shifted, _ = metrics.kernel_inception_distance(real, shifted, num_subsets=5,
                                                       subset_size=500)
    assert kid_shifted > kids[0]


def _naive_unbiased_mmd2(x, y, degree=3, gamma=None, coef0=1.0):
    m, d = x.shape
    gamma = 1.0 / d if gamma is None else gamma
    k = lambda u, v: (gamma * float(np.dot(u, v)) + coef0) ** degree
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


@pytest.mark.parametrize("degree, gamma, coef0", [(3, None, 1.0), (2, 0.5, 0.0), (1, None, 2.0)])
def test_kid_matches_naive_estimator_on_full_sets(degree, gamma, coef0):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 4)), rng.normal(loc=0.3, size=(12, 4))
    # subset_size >= n: every subset is a permutation of the whole set, so all agree.
    mean, std = metrics.kernel_inception_distance(
        x, y, num_subsets=3, subset_size=100, degree=degree, gamma=gamma, coef0=coef0
    )
    np.testing.assert_allclose(mean, _naive_unbiased_mmd2(x, y, degree, gamma, coef0),
                               rtol=1e-10)
    assert std < 1e-10 * max(abs(mean), 1.0)


def test_kid_identical_sets_near_zero(gaussian_features):
    real, _, _ = gaussian_features
    kid_same, _ = metrics.kernel_inception_distance(real, real, num_subsets=2, subset_size=1000)
    kid_shifted, _ = metrics.kernel_inception_distance(real, real + 1.0, num_subsets=2,
                                                       subset_size=1000)
    assert abs(kid_same) < 1e-2 * kid_shifted


def test_kid_unbiased_on_equal_distributions():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    num_subsets = 20
    mean, std = metrics.kernel_inception_distance(x, y, num_subsets=num_subsets,
                                                  subset_size=200, seed=7)
    assert std > 0.0
    assert abs(mean) < 3.0 * std / math.sqrt(num_subsets)


def test_kid_deterministic_and_defaults(gaussian_features):
    real, fake, _ = gaussian_features
    kwargs = dict(num_subsets=3, subset_size=100)
    first = metrics.kernel_inception_distance(real, fake, seed=5, **kwargs)
    again = metrics.kernel_inception_distance(jnp.asarray(real), jnp.asarray(fake), seed=5,
                                              **kwargs)
    np.testing.assert_allclose(first, again, rtol=1e-6)  # jax input arrives as float32
    assert first == metrics.kernel_inception_distance(real, fake, seed=5, **kwargs)
    assert first != metrics.kernel_inception_distance(real, fake, seed=6, **kwargs)
    explicit = metrics.kernel_inception_distance(real, fake, seed=5, degree=3,
                                                 gamma=1.0 / real.shape[1], coef0=1.0, **kwargs)
    assert first == explicit
    _, std_one = metrics.kernel_inception_distance(real, fake, num_subsets=1, subset_size=50)
    assert std_one == 0.0


def test_kid_rejects_bad_inputs():
    with pytest.raises(ValueError):
        metrics.kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError):
        metrics.kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        metrics.kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 3)), num_subsets=0)


@pytest.mark.parametrize(
    "labels, num_classes, kl, hit, histogram",
    [
        (np.arange(20) % 10, 10, 0.0, 10, [2] * 10),
        (np.zeros(7, np.int32), 10, math.log(10), 1, [7] + [0] * 9),
        (np.array([0, 0, 1, 1, 2, 2]), 4, math.log(4) - math.log(3), 3, [2, 2, 2, 0]),
        (np.array([0, 0, 0, 1]), 2, math.log(2) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25),
         2, [3, 1]),
    ],
)
def test_class_histogram_metrics_labels(labels, num_classes, kl, hit, histogram):
    out = metrics.class_histogram_metrics(labels, num_classes)
    assert set(out) == {"kl_to_uniform", "classes_hit", "histogram"}
    np.testing.assert_allclose(out["kl_to_uniform"], kl, atol=1e-12)
    assert out["classes_hit"] == hit and isinstance(out["classes_hit"], int)
    assert out["histogram"] == histogram
    assert isinstance(out["kl_to_uniform"], float)


def test_class_histogram_metrics_probabilities_use_argmax():
    labels = np.array([0, 1, 1, 2, 2, 2])
    num_classes = 5
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, num_classes))
    logits[np.arange(6), labels] += 10.0
    probs = jax.nn.softmax(jnp.asarray(logits), axis=-1)
    from_probs = metrics.class_histogram_metrics(probs, num_classes)
    from_labels = metrics.class_histogram_metrics(jnp.asarray(labels), num_classes)
    assert from_probs == from_labels
    assert from_probs["histogram"] == [1, 2, 3, 0, 0]


@pytest.mark.parametrize(
    "values, num_classes",
    [
        (np.array([0.0, 1.0]), 2),          # float labels are ambiguous
        (np.array([0, 2]), 2),              # out of range
        (np.array([-1, 0]), 2),
        (np.zeros((3, 4)), 5),              # wrong number of columns
        (np.zeros(0, np.int32), 3),         # empty
        (np.zeros((2, 2, 2)), 2),
    ],
)
def test_class_histogram_metrics_rejects_bad_inputs(values, num_classes):
    with pytest.raises(ValueError):
        metrics.class_histogram_metrics(values, num_classes)
