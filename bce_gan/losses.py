"""Binary cross-entropy, over probabilities and over logits, and the GAN losses built on it.

The cost of a mini-batch of m examples is the mean of the per-example losses,

        J(θ) = −(1/m) Σᵢ [yᵢ log h(xᵢ, θ) + (1 − yᵢ) log(1 − h(xᵢ, θ))],

where h is the prediction (a probability) and y the label. Each term matters for one label; the
cost is ≥ 0, goes to 0 when prediction and label agree and to infinity when they disagree.

These functions need jax alone. They are pure, shape-checked at trace time, and safe under
``jax.jit``, ``jax.grad`` and ``jax.vmap``. Where the common libraries go wrong, these do not:

* a logit of ±inf with the label it predicts gives a loss of exactly 0 (not NaN), and the gradient
    is finite everywhere but at NaN inputs;
* tiny losses keep their relative accuracy (softplus(−20) = 2.06e−9 in float32, not 0);
* probabilities are never clipped: the log is clamped at −100 per term (as torch does), so
    p = 1e−8 with label 1 gives 18.42, not keras' 16.12;
* entries excluded by ``where`` contribute exactly 0 to the loss and to every gradient, even when
    they hold NaN or inf;
* labels, weights, masks and ``pos_weight`` may broadcast to the input's shape but never enlarge it:
    ``[m, 1]`` logits with ``[m]`` labels raise instead of silently giving an ``[m, m]`` loss.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

__all__ = ["bce", "bce_with_logits", "discriminator_loss", "generator_loss", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "none", "weighted_mean")

# torch's cap: each log term of the probability loss is clamped at −100.
_LOG_CLAMP = -100.0
# Smallest denominator in the probability gradient (torch's eps for binary_cross_entropy).
_PROB_EPS = 1e-12


def _is_zero_tangent(t) -> bool:
    return type(t) is SymbolicZero


# ---------------------------------------------------------------------------------------------
# Elementwise losses with their derivative rules.
# ---------------------------------------------------------------------------------------------


@jax.custom_jvp
def _logit_loss(x, y, q):
    """q·y·softplus(−x) + (1−y)·softplus(x), with exactly-zero terms for zero coefficients.

    With a = q·y and b = 1 − y, softplus(±x) = relu(±x) + log1p(exp(−|x|)) gives

        loss = (a + b)·log1p(exp(−|x|)) + c·|x|,   c = b for x > 0, a for x < 0.

    The log1p part is finite and keeps its relative accuracy (softplus(−20) = 2.06e−9). Only c·|x|
    can be infinite, and it must be 0 when c is 0 (so (+inf, y=1) gives 0, not 0·inf = NaN). It is
    computed as c·min(|x|, M) + min(|x| − min(|x|, M), c·M)·M, M the largest finite float: the
    second term is 0 for finite x and, for |x| = inf, inf when c > 0 and 0 when c = 0.

    Why not ``jnp.where``: on CPU, XLA fuses a reduction over this expression into one loop only
    if it holds no select or compare; with one, the elementwise loss is written to memory first and
    the forward pass runs 2–3× slower. Everything here is arithmetic, min, max, abs and sign.
    """
    a = q * y
    b = 1 - y
    big = jnp.asarray(jnp.finfo(x.dtype).max, x.dtype)
    abs_x = jnp.abs(x)
    sign_x = jnp.sign(x)
    c = b * jnp.maximum(sign_x, 0) + a * jnp.maximum(-sign_x, 0)  # b for x > 0, a for x < 0 (0 at 0)
    finite_abs_x = jnp.minimum(abs_x, big)
    # 0 for finite x; for |x| = inf, min(inf, c·M)·M: inf if c > 0, 0 if c = 0. (Not c·M·M, which
    # XLA may fold into c·inf.)
    overflow = jnp.minimum(abs_x - finite_abs_x, c * big) * big
    return (a + b) * jnp.log1p(jnp.exp(-abs_x)) + c * finite_abs_x + overflow


def _logit_loss_jvp(primals, tangents):
    x, y, q = primals
    x_dot, y_dot, q_dot = tangents
    out = _logit_loss(x, y, q)
    terms = []
    if not _is_zero_tangent(x_dot):
        # d/dx = σ(x)(1 + (q − 1)y) − q·y = σ(x) + y·(q·(σ(x) − 1) − σ(x)), finite at ±inf, with
        # σ(x) = 1/2 + tanh(x/2)/2: XLA's tanh is a short polynomial, faster on CPU than
        # jax.nn.sigmoid. Near saturation the error is absolute, in the last bit of σ (σ(20) − 1
        # rounds to 0 in float32, as the formula does). Written with no constant but 1/2, so that
        # it shares no expression with the forward pass: XLA:CPU would materialise a shared
        # constant array between the two fusions of jax.value_and_grad (costing ~2x there).
        half_tanh = 0.5 * jnp.tanh(0.5 * x)
        sigmoid_x = 0.5 + half_tanh
        d_x = sigmoid_x + y * (q * (half_tanh - 0.5) - sigmoid_x)
        terms.append(d_x * x_dot)
    if not _is_zero_tangent(y_dot) or not _is_zero_tangent(q_dot):
        sp_neg = _logit_loss(x, jnp.ones_like(y), jnp.ones_like(q))  # softplus(−x)
        if not _is_zero_tangent(y_dot):
            sp_pos = _logit_loss(x, jnp.zeros_like(y), jnp.ones_like(q))  # softplus(x)
            terms.append((q * sp_neg - sp_pos) * y_dot)
        if not _is_zero_tangent(q_dot):
            terms.append(jnp.where(y == 0, jnp.zeros_like(out), y * sp_neg) * q_dot)
    return out, functools.reduce(jnp.add, terms)


_logit_loss.defjvp(_logit_loss_jvp, symbolic_zeros=True)


def _prob_log_terms(p):
    log_p = jnp.maximum(jnp.log(p), _LOG_CLAMP)
    log_not_p = jnp.maximum(jnp.log1p(-p), _LOG_CLAMP)
    return log_p, log_not_p


@jax.custom_jvp
def _prob_loss(p, y, grad_max):
    """−(y·max(log p, −100) + (1−y)·max(log1p(−p), −100)); NaN for p outside [0, 1] or NaN.

    ``grad_max`` is the largest finite value of the caller's input dtype: the derivative saturates
    there, so it never overflows when cast back.
    """
    # No select is needed (and none is used, see _logit_loss): for p outside [0, 1] or NaN one of
    # the logs is NaN, max(NaN, −100) is NaN, and NaN times a zero coefficient is still NaN.
    del grad_max
    log_p, log_not_p = _prob_log_terms(p)
    return -y * log_p - (1 - y) * log_not_p  # (not −(…), which gives −0.0 for a perfect guess)


def _prob_loss_jvp(primals, tangents):
    p, y, grad_max = primals
    p_dot, y_dot, _ = tangents
    out = _prob_loss(p, y, grad_max)
    tangent = jnp.zeros_like(out)
    valid = (p >= 0) & (p <= 1)
    nan = jnp.full_like(out, jnp.nan)
    if not _is_zero_tangent(p_dot):
        # −y/max(p, eps) + (1−y)/max(1−p, eps); each term dropped when its coefficient is 0.
        eps = jnp.asarray(_PROB_EPS, p.dtype)
        pos = jnp.where(y == 0, 0.0, y / jnp.maximum(p, eps))
        neg = jnp.where(y == 1, 0.0, (1 - y) / jnp.maximum(1 - p, eps))
        d_p = jnp.clip(neg - pos, -grad_max, grad_max)
        tangent = tangent + jnp.where(valid, d_p, nan) * p_dot
    if not _is_zero_tangent(y_dot):
        log_p, log_not_p = _prob_log_terms(p)
        tangent = tangent + jnp.where(valid, log_not_p - log_p, nan) * y_dot
    return out, tangent


_prob_loss.defjvp(_prob_loss_jvp, symbolic_zeros=True)


# ---------------------------------------------------------------------------------------------
# Argument handling shared by both losses.
# ---------------------------------------------------------------------------------------------


@jax.custom_vjp
def _saturating_cast(x, like):
    """``x`` cast to the dtype of ``like``; the gradient comes back clipped to ``x``'s finite range.

    Used to widen half-precision probabilities: their gradient (up to 1e12 per element, times the
    weights) must saturate at float16's 65504 rather than overflow to inf on the way back.
    """
    return x.astype(like.dtype)


def _saturating_cast_fwd(x, like):
    return x.astype(like.dtype), (jnp.zeros((), x.dtype), like)


def _saturating_cast_bwd(residuals, g):
    zero, like = residuals
    limit = jnp.finfo(zero.dtype).max
    return jnp.clip(g, -limit, limit).astype(zero.dtype), jnp.zeros_like(like)


_saturating_cast.defvjp(_saturating_cast_fwd, _saturating_cast_bwd)


def _input_array(value, name: str) -> jax.Array:
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(
                f"{name} must be a floating-point array, got dtype {value.dtype}; "
                f"cast it, e.g. {name}.astype(jnp.float32)."
        )
    return value


def _broadcast_arg(value, name: str, input_name: str, shape: tuple[int, ...], dtype) -> jax.Array:
    """Casts ``value`` to ``dtype`` and broadcasts it to ``shape``, refusing to enlarge ``shape``."""
    value = jnp.asarray(value)
    if not (
            jnp.issubdtype(value.dtype, jnp.number) or jnp.issubdtype(value.dtype, jnp.bool_)
    ):
        raise TypeError(f"{name} must be numeric, got dtype {value.dtype}.")
    try:
        broadcast = jnp.broadcast_shapes(value.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise ValueError(
                f"{name} of shape {value.shape} does not broadcast to {input_name} of shape {tuple(shape)} "
                f"without enlarging it; give {name} the shape {tuple(shape)} (or one that broadcasts to it), "
                f"e.g. squeeze a trailing axis of size 1."
        )
    return jnp.broadcast_to(value.astype(dtype), shape)


def _mask_array(where, input_name: str, shape) -> jax.Array | None:
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean array, got dtype {where.dtype}.")
    return _broadcast_arg(where, "where", input_name, shape, jnp.bool_)


def _check_options(reduction: str, label_smoothing) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}.")
    if isinstance(label_smoothing, (int, float)) and not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}.")


def _smooth(labels, label_smoothing, dtype):
    if isinstance(label_smoothing, (int, float)) and label_smoothing == 0:
        return labels
    ls = jnp.asarray(label_smoothing, dtype)
    return labels * (1 - ls) + ls / 2


def _reduce(losses, weights, mask, reduction: str):
    """Applies weights and the reduction; ``losses`` is already 0 where ``mask`` is False."""
    weighted = losses if weights is None else weights * losses
    if reduction == "none":
        return weighted
    total = jnp.sum(weighted)
    if reduction == "sum":
        return total
    if reduction == "weighted_mean" and weights is not None:
        denominator = jnp.sum(weights)
    elif mask is None:
        return total / losses.size if losses.size else jnp.zeros_like(total)
    else:
        denominator = jnp.sum(mask).astype(total.dtype)
    # A mean over nothing is 0, with a zero gradient (never 0/0).
    empty = denominator == 0
    return jnp.where(empty, jnp.zeros_like(total), total / jnp.where(empty, 1, denominator))


def _prepare(inputs, input_name, labels, weights, where, label_smoothing, safe_input, saturate_gradient=False):
    """Casts everything to the compute dtype, checks shapes and replaces excluded entries."""
    dtype = jnp.promote_types(inputs.dtype, jnp.float32)
    shape = inputs.shape
    labels = _broadcast_arg(labels, "labels", input_name, shape, dtype)
    if weights is not None:
        weights = _broadcast_arg(weights, "weights", input_name, shape, dtype)
    mask = _mask_array(where, input_name, shape)
    if saturate_gradient and inputs.dtype != dtype:
        inputs = _saturating_cast(inputs, jnp.zeros((), dtype))
    else:
        inputs = inputs.astype(dtype)
    if mask is not None:
        # Replace excluded entries by safe values *before* the loss, so NaN/inf there can reach
        # neither the loss nor any gradient.
        inputs = jnp.where(mask, inputs, jnp.asarray(safe_input, dtype))
        labels = jnp.where(mask, labels, jnp.zeros((), dtype))
        if weights is not None:
            weights = jnp.where(mask, weights, jnp.zeros((), dtype))
    labels = _smooth(labels, label_smoothing, dtype)
    return inputs, labels, weights, mask, dtype


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def bce_with_logits(
        logits: Any,
        labels: Any,
        *,
        weights: Any = None,
        pos_weight: Any = None,
        where: Any = None,
        reduction: str = "mean",
        label_smoothing: Any = 0.0,
) -> jax.Array:
    r"""Binary cross-entropy of logits: ``q·y·softplus(−x) + (1−y)·softplus(x)`` per element.

    With x = logit(h) this is the BCE cost −[y log h + (1−y) log(1−h)] of the module docstring
    (and q = 1), computed stably from the logit. A term whose coefficient is exactly 0 contributes
    exactly 0, so a logit of +inf with label 1 (or −inf with label 0) has loss 0; the opposite
    pairings have loss +inf. The derivative with respect to x is ``σ(x)(1 + (q−1)y) − q·y``,
    finite for every non-NaN input.

    Args:
        logits: ``[...]`` floating array of logits x (any shape; often ``[m]``).
        labels: targets y in [0, 1] (soft labels allowed), broadcastable to ``logits`` without
            enlarging it; a scalar is fine. Integer and boolean labels are cast to the compute dtype.
        weights: optional per-element weights, broadcastable to ``logits``.
        pos_weight: optional weight q of the positive term, broadcast from the trailing axis (a
            ``[C]`` array gives one weight per class of ``[..., C]`` logits).
        where: optional boolean mask broadcastable to ``logits``; excluded elements contribute exactly
            0 to the loss and to every gradient, whatever they hold (NaN and inf included).
        reduction: ``"mean"`` (default): the sum over included elements divided by their number
            (weights do not change the divisor); ``"sum"``; ``"none"``: the elementwise losses, 0 where
            excluded; ``"weighted_mean"``: Σ w·l / Σ w over the included elements. A mean over no
            element is 0 with a zero gradient.
        label_smoothing: ls in [0, 1]; labels become ``y(1 − ls) + ls/2`` before anything else.
            May be a traced value.

    Returns:
        The reduced loss (a scalar), or the ``logits``-shaped losses for ``reduction="none"``, in
        ``promote_types(logits.dtype, float32)``. Gradients come back in ``logits.dtype``.

    Raises:
        TypeError: if ``logits`` is not floating point or ``where`` is not boolean.
        ValueError: if an argument would enlarge the shape of ``logits``, or for an unknown
            ``reduction``.

    References:
        Goodfellow et al., Deep Learning (2016), §6.2.2.2 (the logit form of the Bernoulli NLL).
    """
    _check_options(reduction, label_smoothing)
    logits = _input_array(logits, "logits")
    x, y, weights, mask, dtype = _prepare(
            logits, "logits", labels, weights, where, label_smoothing, safe_input=0.0
    )
    if pos_weight is None:
        q = jnp.ones((), dtype)  # a scalar: broadcast inside the fusions, never materialised
    else:
        q = _broadcast_arg(pos_weight, "pos_weight", "logits", x.shape, dtype)
        if mask is not None:
            q = jnp.where(mask, q, jnp.ones((), dtype))
    losses = _logit_loss(x, y, q)
    if mask is not None:
        losses = jnp.where(mask, losses, jnp.zeros((), dtype))
    return _reduce(losses, weights, mask, reduction)


def bce(
        probs: Any,
        labels: Any,
        *,
        weights: Any = None,
        where: Any = None,
        reduction: str = "mean",
        label_smoothing: Any = 0.0,
) -> jax.Array:
    r"""Binary cross-entropy of probabilities: ``−(y·log p + (1−y)·log(1−p))`` per element.

    Each log is clamped at −100 in log space (torch's cap: at most 100 per element); ``p`` itself is
    never clipped, so the loss is exact wherever it is below the cap. ``p`` outside [0, 1] or NaN
    gives NaN: there is no silent clipping. The derivative with respect to p is
    ``−y/max(p, 1e−12) + (1−y)/max(1−p, 1e−12)`` (terms with a zero coefficient dropped), saturated
    to the finite range of ``probs.dtype``: never NaN or inf for p in [0, 1].

    Prefer :func:`bce_with_logits` when the logits are at hand: it is exact where this one clamps.

    Args:
        probs: ``[...]`` floating array of predicted probabilities h in [0, 1].
        labels: targets y in [0, 1], broadcastable to ``probs`` without enlarging it.
        weights: optional per-element weights, broadcastable to ``probs``.
        where: optional boolean mask broadcastable to ``probs``; see :func:`bce_with_logits`.
        reduction: ``"mean"``, ``"sum"``, ``"none"`` or ``"weighted_mean"``; see
            :func:`bce_with_logits`.
        label_smoothing: ls in [0, 1]; labels become ``y(1 − ls) + ls/2``.

    Returns:
        The reduced loss, or the elementwise losses for ``reduction="none"``, in
        ``promote_types(probs.dtype, float32)``.

    Raises:
        TypeError: if ``probs`` is not floating point or ``where`` is not boolean.
        ValueError: if an argument would enlarge the shape of ``probs``, or for an unknown
            ``reduction``.

    References:
        The seed course's cost J(θ); torch.nn.functional.binary_cross_entropy for the −100 clamp.
    """
    _check_options(reduction, label_smoothing)
    probs = _input_array(probs, "probs")
    grad_max = jnp.asarray(jnp.finfo(probs.dtype).max, jnp.promote_types(probs.dtype, jnp.float32))
    p, y, weights, mask, dtype = _prepare(
            probs, "probs", labels, weights, where, label_smoothing, safe_input=0.5, saturate_gradient=True
    )
    losses = _prob_loss(p, y, grad_max)
    if mask is not None:
        losses = jnp.where(mask, losses, jnp.zeros((), dtype))
    return _reduce(losses, weights, mask, reduction)


def discriminator_loss(real_logits: Any, fake_logits: Any, *, label_smoothing: Any = 0.0) -> jax.Array:
    r"""The discriminator's BCE: real examples labelled 1, generated ones 0, the two terms averaged.

    ``(mean BCE(real_logits, 1 − ls/2) + mean BCE(fake_logits, 0)) / 2``. Averaging the two terms (as
    the seed course does) rather than summing them (as Goodfellow et al. write the value function)
    halves the loss, so an uninformed discriminator starts at ln 2 ≈ 0.693 like the generator.
    One-sided label smoothing (Salimans et al. 2016) moves the real target only.

    Args:
        real_logits: ``[m]`` logits of the discriminator on real examples.
        fake_logits: ``[m']`` logits on generated examples.
        label_smoothing: ls in [0, 1]; the real target becomes 1 − ls/2.

    Returns:
        A scalar float32 (or wider) loss.

    References:
        Goodfellow et al., Generative Adversarial Nets (2014), eq. 1.
        Salimans et al., Improved Techniques for Training GANs (2016), §3.4.
    """
    real = bce_with_logits(real_logits, 1.0, label_smoothing=label_smoothing)
    fake = bce_with_logits(fake_logits, 0.0)
    return (real + fake) / 2


def generator_loss(fake_logits: Any, *, saturating: bool = False) -> jax.Array:
    r"""The generator's BCE on the discriminator's logits for generated examples.

    Non-saturating (default): ``mean softplus(−D(G(z)))`` = BCE with label 1, i.e. −log D(G(z)),
    whose gradient stays strong while the discriminator rejects the samples. Saturating
    (``saturating=True``): the minimax form ``−mean softplus(D(G(z)))`` = mean log(1 − D(G(z))),
    written without a constant offset, whose gradient vanishes when D(G(z)) → 0.

    Args:
        fake_logits: ``[m]`` logits of the discriminator on generated examples.
        saturating: use the minimax form instead of the non-saturating one.

    Returns:
        A scalar float32 (or wider) loss; ≥ 0 for the non-saturating form, ≤ 0 for the minimax one.

    References:
        Goodfellow et al., Generative Adversarial Nets (2014), §3 (the −log D(G(z)) heuristic).
    """
    if saturating:
        return -bce_with_logits(fake_logits, 0.0)
    return bce_with_logits(fake_logits, 1.0)
