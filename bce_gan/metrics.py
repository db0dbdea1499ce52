"""Sample-quality metrics: 2-D mixture mode coverage and image feature distances.

Two families, following the protocols in ``DESIGN.md`` ("Metrics protocols"):

* :func:`mode_metrics` -- modes captured, high-quality fraction and reverse KL for 2-D
  Gaussian mixtures (VEEGAN / PacGAN protocol). Written in ``jax.numpy``: pure, no Python
  branches on data, so it can run inside jitted and vmapped code (one call per population
  member).
* :func:`feature_statistics`, :func:`frechet_distance`, :func:`kernel_inception_distance`,
  :func:`class_histogram_metrics` -- image metrics on the penultimate features (or the
  predicted classes) of a small in-project classifier. Host-side NumPy in float64 for
  accuracy; they accept NumPy or JAX arrays.

This module imports jax and numpy only (it stands beside ``train``, importing neither
``train`` nor ``sweep``).

References:
    Srivastava et al., 2017. VEEGAN: Reducing Mode Collapse in GANs using Implicit
    Variational Learning. https://arxiv.org/abs/1705.07761
    Lin et al., 2018. PacGAN: The power of two samples in generative adversarial networks.
    https://arxiv.org/abs/1712.04086
    Heusel et al., 2017. GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium. https://arxiv.org/abs/1706.08500
    Bińkowski et al., 2018. Demystifying MMD GANs. https://arxiv.org/abs/1801.01401
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "class_histogram_metrics",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "mode_metrics",
]


# --------------------------------------------------------------------------------------
# 2-D mixtures (jax.numpy; jit- and vmap-safe)
# --------------------------------------------------------------------------------------


def mode_metrics(samples, modes, std, *, threshold: float = 3.0) -> dict[str, jax.Array]:
    """Mode coverage of samples from a Gaussian mixture (VEEGAN / PacGAN protocol).

    Each sample is assigned to its nearest mode (Euclidean). It is *high quality* if that
    distance is at most ``threshold * std`` (inclusive). A mode is *captured* if it is the
    nearest mode of at least one high-quality sample. The reverse KL is

        KL(p || U) = sum_k p_k log(K p_k) = log K - H(p),

    where ``p`` is the histogram of nearest modes of the high-quality samples and ``U`` the
    uniform distribution over the ``K`` modes; an empty bin contributes 0 (0 log 0 = 0).
    With no high-quality sample there is no histogram: the reverse KL is then ``log K`` and
    ``no_high_quality`` is True. Non-finite samples (NaN, inf) are never high quality, so
    the outputs are never NaN.

    Pure and free of data-dependent Python branches: safe under ``jax.jit`` and
    ``jax.vmap`` (e.g. over a leading batch of sample sets). Shapes are checked at trace
    time.

    Args:
        samples: ``[n, D]`` float array of generated samples (``D = 2`` in the protocol,
            with ``n = 2500``).
        modes: ``[K, D]`` float array of mixture means.
        std: scalar standard deviation of each mixture component.
        threshold: keyword-only; a sample is high quality within ``threshold * std`` of
            its nearest mode. Default 3.0.

    Returns:
        A dict of scalars:
            ``"modes"``: int32, number of captured modes, in ``[0, K]``.
            ``"high_quality"``: float, fraction of high-quality samples in ``[0, 1]`` (report
                it as a percentage).
            ``"reverse_kl"``: float, KL(histogram || uniform) in ``[0, log K]``.
            ``"no_high_quality"``: bool, True if no sample is high quality.

    Raises:
        ValueError: if ``samples`` or ``modes`` is not 2-D, their last dimensions differ,
            ``modes`` is empty, or ``std`` is not a scalar.

    References:
        Srivastava et al., 2017. VEEGAN. https://arxiv.org/abs/1705.07761
        Lin et al., 2018. PacGAN. https://arxiv.org/abs/1712.04086
    """
    samples = jnp.asarray(samples)
    modes = jnp.asarray(modes)
    std = jnp.asarray(std)
    if samples.ndim != 2 or modes.ndim != 2 or samples.shape[1] != modes.shape[1]:
        raise ValueError(
            f"mode_metrics expects samples [n, D] and modes [K, D]; got samples "
            f"{samples.shape} and modes {modes.shape}"
        )
    if modes.shape[0] == 0:
        raise ValueError(f"mode_metrics needs at least one mode; got modes {modes.shape}")
    if std.ndim != 0:
        raise ValueError(f"mode_metrics expects a scalar std; got shape {std.shape}")
    n, num_modes = samples.shape[0], modes.shape[0]
    dtype = jnp.result_type(samples.dtype, modes.dtype, std.dtype, jnp.float32)
    samples, modes, std = samples.astype(dtype), modes.astype(dtype), std.astype(dtype)

    diff_NxKxD = samples[:, None, :] - modes[None, :, :]
    sq_dist_NxK = jnp.sum(diff_NxKxD * diff_NxKxD, axis=-1)
    nearest_N = jnp.argmin(sq_dist_NxK, axis=-1)
    min_sq_dist_N = jnp.min(sq_dist_NxK, axis=-1)
    radius = threshold * std
    # Comparisons with NaN are False, so non-finite samples are never high quality.
    high_quality_N = min_sq_dist_N <= radius * radius

    onehot_NxK = jax.nn.one_hot(nearest_N, num_modes, dtype=dtype)
    counts_K = jnp.sum(onehot_NxK * high_quality_N.astype(dtype)[:, None], axis=0)
    num_hq = jnp.sum(counts_K)
    no_high_quality = num_hq == 0
    safe_total = jnp.where(no_high_quality, jnp.ones_like(num_hq), num_hq)
    probs_K = counts_K / safe_total
    # p_k log(K p_k) with K p_k = K c_k / total: exactly 1 for an exactly uniform histogram.
    ratio_K = num_modes * counts_K / safe_total
    safe_ratio_K = jnp.where(counts_K > 0, ratio_K, jnp.ones_like(ratio_K))
    kl = jnp.sum(probs_K * jnp.log(safe_ratio_K))
    kl = jnp.maximum(kl, 0.0)  # only float round-off can make it negative
    log_k = jnp.asarray(math.log(num_modes), dtype)
    reverse_kl = jnp.where(no_high_quality, log_k, kl)

    return {
        "modes": jnp.sum(counts_K > 0).astype(jnp.int32),
        "high_quality": (num_hq / max(n, 1)).astype(dtype),
        "reverse_kl": reverse_kl,
        "no_high_quality": no_high_quality,
    }


# --------------------------------------------------------------------------------------
# Image feature metrics (host-side NumPy, float64)
# --------------------------------------------------------------------------------------


def _as_features(features, name: str) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a [n, d] array of features; got shape {x.shape}")
    return x


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via eigh; negative (round-off) eigenvalues clipped to 0."""
    eigvals, eigvecs = np.linalg.eigh(cov)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of a set of feature vectors, in float64.

    Args:
        features: ``[n, d]`` array (NumPy or JAX), ``n >= 2``.

    Returns:
        ``(mu, cov)``: ``[d]`` mean and ``[d, d]`` covariance (``ddof=1``), float64.

    Raises:
        ValueError: if ``features`` is not 2-D or has fewer than two rows.
    """
    x = _as_features(features, "features")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"feature_statistics needs at least 2 samples; got shape {x.shape}")
    mu = x.mean(axis=0)
    centred = x - mu
    cov = centred.T @ centred / (n - 1)
    return mu, cov


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance between two Gaussians N(mu1, cov1) and N(mu2, cov2).

        FD = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2})

    On classifier features this is the FID of Heusel et al. (2017), here with the
    project's own small classifier instead of Inception.

    Numerics (float64): no ``scipy.linalg.sqrtm`` of the non-symmetric product ``C1 C2``
    (it can return complex parts and is unstable for singular covariances). Both
    covariances are symmetrised, and their PSD square roots ``S1``, ``S2`` formed from
    symmetric eigendecompositions (``eigh``) with negative round-off eigenvalues clipped to
    0. Since ``S1 C2 S1 = (S1 S2)(S1 S2)^T``, the trace of its square root is the sum of the
    singular values of ``S1 S2``. This equals the sum of square roots of the eigenvalues of
    the symmetric product ``S1 C2 S1`` but is more accurate for (near-)singular
    covariances, e.g. ``d > n``: square roots of round-off-sized eigenvalues of the product
    would add errors of order ``sqrt(eps) * scale`` per dimension; singular values are
    accurate to ``eps * scale``. The exact value is non-negative (the squared
    2-Wasserstein distance); a negative result within round-off
    (``>= -1e-8 * scale``, ``scale = ||mu1 - mu2||^2 + |Tr C1 + Tr C2|``) is clipped to 0;
    anything more negative raises, since then the inputs are not covariance matrices.

    Args:
        mu1: ``[d]`` mean of the first set.
        cov1: ``[d, d]`` covariance of the first set (symmetric PSD).
        mu2: ``[d]`` mean of the second set.
        cov2: ``[d, d]`` covariance of the second set (symmetric PSD).

    Returns:
        The Fréchet distance as a Python float, ``>= 0``.

    Raises:
        ValueError: on shape mismatches, or if the result is negative beyond round-off.

    References:
        Heusel et al., 2017. GANs Trained by a Two Time-Scale Update Rule Converge to a
        Local Nash Equilibrium. https://arxiv.org/abs/1706.08500
    """
    mu1 = np.asarray(mu1, dtype=np.float64)
    mu2 = np.asarray(mu2, dtype=np.float64)
    cov1 = np.asarray(cov1, dtype=np.float64)
    cov2 = np.asarray(cov2, dtype=np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(
            f"means must be [d] vectors of equal shape; got {mu1.shape} and {mu2.shape}"
        )
    d = mu1.shape[0]
    if cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(
            f"covariances must be [{d}, {d}] to match the means; "
            f"got {cov1.shape} and {cov2.shape}"
        )
    cov1 = 0.5 * (cov1 + cov1.T)
    cov2 = 0.5 * (cov2 + cov2.T)

    # Tr (S1 C2 S1)^{1/2} with S1 = C1^{1/2}: S1 C2 S1 = A A^T for A = S1 S2, so the trace
    # is the sum of the singular values of A.
    sqrt_cov1 = _sqrt_psd(cov1)
    sqrt_cov2 = _sqrt_psd(cov2)
    tr_covmean = np.sum(np.linalg.svd(sqrt_cov1 @ sqrt_cov2, compute_uv=False))

    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    trace_sum = float(np.trace(cov1) + np.trace(cov2))
    fd = mean_term + trace_sum - 2.0 * float(tr_covmean)
    scale = mean_term + abs(trace_sum)
    if fd < 0.0:
        if fd < -1e-8 * scale - 1e-12:
            raise ValueError(
                f"Fréchet distance came out negative ({fd:.3e}, scale {scale:.3e}); "
                "are cov1 and cov2 positive semi-definite?"
            )
        fd = 0.0
    return fd


def _polynomial_kernel(x, y, *, degree: int, gamma: float, coef0: float) -> np.ndarray:
    return (gamma * (x @ y.T) + coef0) ** degree


def kernel_inception_distance(
    features1,
    features2,
    *,
    num_subsets: int = 10,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance (KID): unbiased MMD^2 with a polynomial kernel, averaged over subsets.

    With ``k(x, y) = (gamma x.y + coef0)^degree`` and subsets ``X``, ``Y`` of ``m`` rows each,

        MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
                  - 2 sum_{i, j} k(x_i, y_j) / m^2,

    the unbiased estimator (diagonal terms ``k(x_i, x_i)``, ``k(y_i, y_i)`` excluded). It can
    be slightly negative; its expectation is 0 when both sets come from the same
    distribution. Each of ``num_subsets`` rounds draws ``m = min(subset_size, n1, n2)`` rows
    without replacement from each set, independently, with ``np.random.default_rng(seed)``,
    so the result is deterministic given ``seed``.

    Args:
        features1: ``[n1, d]`` features of the first set (e.g. generated images).
        features2: ``[n2, d]`` features of the second set (e.g. held-out real images).
        num_subsets: keyword-only; number of subset pairs to average over.
        subset_size: keyword-only; rows per subset (capped at ``min(n1, n2)``).
        degree: keyword-only; polynomial degree (3 as in Bińkowski et al.).
        gamma: keyword-only; kernel scale; ``None`` means ``1 / d``.
        coef0: keyword-only; kernel offset.
        seed: keyword-only; seed of the NumPy generator drawing the subsets.

    Returns:
        ``(mean, std)`` of MMD^2_u over the subsets, as Python floats (``std`` with
        ``ddof=0``, as in the reference implementation).

    Raises:
        ValueError: if the inputs are not 2-D with equal feature dimension, or fewer than two
            rows are available per subset, or ``num_subsets < 1``.

    References:
        Bińkowski et al., 2018. Demystifying MMD GANs. https://arxiv.org/abs/1801.01401
    """
    x = _as_features(features1, "features1")
    y = _as_features(features2, "features2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: features1 {x.shape}, features2 {y.shape}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1; got {num_subsets}")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(
            f"KID needs subsets of at least 2 rows; got subset_size={subset_size}, "
            f"features1 {x.shape}, features2 {y.shape}"
        )
    d = x.shape[1]
    gamma = 1.0 / d if gamma is None else float(gamma)
    kernel = lambda a, b: _polynomial_kernel(a, b, degree=degree, gamma=gamma, coef0=coef0)

    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets, dtype=np.float64)
    for s in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        k_xx = kernel(xs, xs)
        k_yy = kernel(ys, ys)
        k_xy = kernel(xs, ys)
        off_diag_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        off_diag_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[s] = off_diag_xx + off_diag_yy - 2.0 * k_xy.sum() / (m * m)
    return float(estimates.mean()), float(estimates.std())


def class_histogram_metrics(class_probs_or_labels, num_classes: int) -> dict:
    """Histogram of predicted classes: KL to uniform and number of classes hit.

    With ``p`` the fraction of samples predicted as each class,
    ``kl_to_uniform = KL(p || U) = sum_c p_c log(C p_c) = log C - H(p)`` (empty classes
    contribute 0): 0 for a perfectly balanced histogram, ``log C`` when every sample falls
    in one class. The counterpart, for images, of the mixture reverse KL of
    :func:`mode_metrics`.

    Args:
        class_probs_or_labels: either ``[n]`` integer predicted labels in
            ``[0, num_classes)``, or ``[n, num_classes]`` class probabilities (or logits; only
            the argmax is used). NumPy or JAX.
        num_classes: number of classes ``C``.

    Returns:
        ``{"kl_to_uniform": float, "classes_hit": int, "histogram": list[int]}`` where
        ``histogram`` holds the count of samples per class (length ``C``).

    Raises:
        ValueError: on an empty input, a float ``[n]`` input, labels out of range, or a
            ``[n, C']`` input with ``C' != num_classes``.
    """
    values = np.asarray(class_probs_or_labels)
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    if values.ndim == 2:
        if values.shape[1] != num_classes:
            raise ValueError(
                f"class probabilities must be [n, {num_classes}]; got shape {values.shape}"
            )
        labels = np.argmax(values, axis=1)
    elif values.ndim == 1:
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                f"[n] input must hold integer labels; got dtype {values.dtype} "
                "(pass probabilities as [n, num_classes])"
            )
        labels = values.astype(np.int64)
    else:
        raise ValueError(
            "expected [n] integer labels or [n, num_classes] probabilities; "
            f"got shape {values.shape}"
        )
    if labels.shape[0] == 0:
        raise ValueError("class_histogram_metrics needs at least one sample")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got range [{labels.min()}, {labels.max()}]"
        )
    counts = np.bincount(labels, minlength=num_classes)
    total = counts.sum()
    probs = counts / total
    hit = counts > 0
    kl = float(np.sum(probs[hit] * np.log(num_classes * counts[hit] / total)))
    return {
        "kl_to_uniform": max(kl, 0.0),  # only round-off can make it negative
        "classes_hit": int(hit.sum()),
        "histogram": [int(c) for c in counts],
    }
