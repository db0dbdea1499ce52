"""Flax NNX generators and discriminators: the course MLP GAN, DCGAN, and the 2-D toy MLPs of PacGAN.

Every model is an ``nnx.Module`` meant to be used functionally by the training code::

    g, d = create_models("mlp", (28, 28, 1), rngs=nnx.Rngs(0))
    g_graphdef, g_params, g_rest = nnx.split(g, nnx.Param, ...)  # once, outside jit

    def g_forward(g_params, g_rest, z):  # inside the jitted step
        g = nnx.merge(g_graphdef, g_params, g_rest)
        fake = g(z)  # training mode: batch statistics, running averages updated
        _, _, g_rest = nnx.split(g, nnx.Param, ...)  # same structure and dtypes as before
        return fake, g_rest

``g_rest`` holds the ``nnx.BatchStat`` running averages of the BatchNorm layers (an empty state for a
model without BatchNorm) and nothing else: no module keeps an ``nnx.Rngs``. Models are built in training
mode: BatchNorm normalises with the statistics of the batch and updates its running averages. To
normalise with the running averages instead, either pass ``use_running_average=True`` to the call (every
model takes it; those without BatchNorm ignore it), or switch the module before splitting with
``model.eval()`` (``model.train()`` switches back) or ``nnx.view(model, use_running_average=True)``. The
mode is static: it lives in the graphdef, and the state keeps its structure.

Discriminators return one float32 logit per sample, shape ``[B]`` (``[B // pack]`` when packing), never
``[B, 1]``. Generators return samples of the data shape, in the computation dtype.

Precision: every model takes ``dtype`` (the computation dtype; ``None`` means the dtype of the inputs and
parameters, float32 by default) and ``param_dtype`` (float32 by default), forwarded to each nnx layer,
so ``dtype=jnp.bfloat16`` runs matmuls and convolutions in bfloat16 on float32 parameters. BatchNorm
running averages stay float32 whatever ``dtype``.

BatchNorm uses momentum 0.9 and epsilon 1e-5 (PyTorch's defaults, ``momentum=0.1`` in its convention),
as in the PyTorch references these architectures come from.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = [
    "DCGAN_IMAGE_SIDES",
    "MODEL_NAMES",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ToyDiscriminator",
    "ToyGenerator",
    "allowed_options",
    "create_models",
    "default_z_dim",
    "output_range",
    "sample_latent",
]

MODEL_NAMES = ("mlp", "dcgan", "toy")

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_DCGAN_INIT_STD = 0.02

# DCGAN layer plans by image side: (side of the projected feature map, channel multipliers of base_width
# for the projection and each inner upsampling stage). The generator doubles the side len(mults) times;
# the discriminator halves it as many times, with widths base_width * (1, 2, 4, ...).
_DCGAN_PLANS: dict[int, tuple[int, tuple[int, ...]]] = {
    8: (2, (4, 2)),  # 2 -> 4 -> 8
    28: (7, (4, 2)),  # 7 -> 14 -> 28
    32: (4, (4, 2, 1)),  # 4 -> 8 -> 16 -> 32
}
DCGAN_IMAGE_SIDES = tuple(sorted(_DCGAN_PLANS))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _widths(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a sequence of positive ints, got {value!r}")
    return tuple(_positive_int(f"each entry of {name}", v) for v in value)


def _shape(name: str, value: Any) -> tuple[int, ...]:
    shape = _widths(name, value)
    if not shape:
        raise ValueError(f"{name} must not be empty, got {value!r}")
    return shape


def _as_dtype(value: Any) -> Any:
    """Normalises a dtype option: ``None``, a dtype, or a name such as ``"bfloat16"``."""
    return None if value is None else jnp.dtype(value)


def _check_input(module: str, x: jax.Array, feature_shape: tuple[int, ...]) -> None:
    """Raises ``ValueError`` (at trace time) unless ``x`` has shape ``[B, *feature_shape]``."""
    if x.ndim != 1 + len(feature_shape) or tuple(x.shape[1:]) != feature_shape:
        expected = ", ".join(map(str, feature_shape))
        raise ValueError(f"{module} expects input of shape [B, {expected}], got {tuple(x.shape)}")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _normal_draw(key: jax.Array, size: int, dtype: Any, stddev: float) -> jax.Array:
    return stddev * jax.random.normal(key, (size,), dtype)


def _flat_normal(stddev: float):
    """N(0, stddev) initialiser: the distribution of ``nnx.initializers.normal``, drawn as a flat vector
    (compiled once per size) and reshaped. XLA:CPU compiles a 4-D draw (a conv kernel) several times
    slower, and model construction is eager, one compile per new shape: this keeps it short."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return _normal_draw(key, math.prod(shape), jnp.dtype(dtype), stddev).reshape(shape)

    return init


def _torch_linear(w_in: int, w_out: int, **layer_kwargs: Any) -> nnx.Linear:
    """``nnx.Linear`` with PyTorch's default init: weights and biases U(±1/sqrt(fan_in)).

    The course's models are PyTorch ``nn.Linear`` layers; with this init both GAN losses start at
    ln 2 ≈ 0.693 as in the course (flax's LeCun-normal weights start the generator's loss near 0.59).
    """
    bound = 1.0 / math.sqrt(w_in)

    def bias_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return nnx.Linear(
        w_in,
        w_out,
        kernel_init=nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_init=bias_init,
        **layer_kwargs,
    )


def _normal_init(init_std: float | None) -> dict[str, Any]:
    """Initialiser keywords for a layer: N(0, init_std) weights and zero biases; ``None``: flax defaults."""
    if init_std is None:
        return {}
    if not isinstance(init_std, numbers.Real) or isinstance(init_std, bool) or not init_std > 0:
        raise ValueError(f"init_std must be a positive float or None, got {init_std!r}")
    return {"kernel_init": _flat_normal(float(init_std)), "bias_init": nnx.initializers.zeros_init()}


def _batch_norm(num_features: int, **layer_kwargs: Any) -> nnx.BatchNorm:
    return nnx.BatchNorm(num_features, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, **layer_kwargs)


def _dcgan_plan(image_shape: Any) -> tuple[int, tuple[int, ...]]:
    """The DCGAN plan for an ``(H, W, C)`` image shape; ``ValueError`` naming the supported shapes."""
    shape = tuple(image_shape) if isinstance(image_shape, Sequence) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(_is_int(s) for s in shape)
        or shape[0] != shape[1]
        or shape[0] not in _DCGAN_PLANS
        or shape[2] < 1
    ):
        supported = ", ".join(f"({s}, {s}, C)" for s in DCGAN_IMAGE_SIDES)
        raise ValueError(
            f"DCGAN does not support image shape {image_shape!r}; supported (H, W, C) shapes: {supported}, "
            "e.g. (28, 28, 1), (32, 32, 3), (8, 8, 1)"
        )
    return _DCGAN_PLANS[shape[0]]


def sample_latent(key: jax.Array, batch_size: int, z_dim: int, dtype: Any = jnp.float32) -> jax.Array:
    """Draws generator inputs from a standard normal.

    Args:
        key: PRNG key.
        batch_size: number of latent vectors (m).
        z_dim: latent dimension.
        dtype: dtype of the result.

    Returns:
        ``[batch_size, z_dim]`` array of N(0, 1) samples.
    """
    return jax.random.normal(key, (batch_size, z_dim), dtype)


# ---------------------------------------------------------------------------------------------
# Course MLP GAN
# ---------------------------------------------------------------------------------------------


class MLPGenerator(nnx.Module):
    """Course MLP generator: (Linear -> BatchNorm -> ReLU) per hidden width, then Linear -> sigmoid.

    Linear layers use PyTorch's default init (weights and biases uniform ±1/sqrt(fan_in)), as the
    course's ``nn.Linear`` layers do.

    Args:
        z_dim: latent dimension.
        out_shape: shape of one sample, e.g. ``(28, 28, 1)``.
        hidden: hidden widths.
        dtype: computation dtype (``None``: from the inputs and parameters).
        param_dtype: parameter dtype.
        rngs: initialisation keys.
    """

    def __init__(
        self,
        z_dim: int = 64,
        out_shape: Sequence[int] = (28, 28, 1),
        *,
        hidden: Sequence[int] = (128, 256, 512, 1024),
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.z_dim = _positive_int("z_dim", z_dim)
        self.out_shape = _shape("out_shape", out_shape)
        self.hidden = _widths("hidden", hidden)
        layer_kwargs = {"dtype": _as_dtype(dtype), "param_dtype": param_dtype, "rngs": rngs}
        widths = (self.z_dim, *self.hidden)
        self.hidden_layers = nnx.List(
            [_torch_linear(w_in, w_out, **layer_kwargs) for w_in, w_out in zip(widths[:-1], widths[1:])]
        )
        self.norms = nnx.List([_batch_norm(w, **layer_kwargs) for w in self.hidden])
        self.output_layer = _torch_linear(widths[-1], math.prod(self.out_shape), **layer_kwargs)

    def __call__(self, z: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """Maps latents to samples.

        Args:
            z: ``[B, z_dim]`` latents.
            use_running_average: BatchNorm mode; ``None`` keeps the module's (see ``train``/``eval``).

        Returns:
            ``[B, *out_shape]`` samples in [0, 1].
        """
        _check_input("MLPGenerator", z, (self.z_dim,))
        h = z
        for layer, norm in zip(self.hidden_layers, self.norms):
            h = nnx.relu(norm(layer(h), use_running_average=use_running_average))
        samples = nnx.sigmoid(self.output_layer(h))
        return samples.reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nnx.Module):
    """Course MLP discriminator: flatten, (Linear -> LeakyReLU) per hidden width, then Linear(1).

    Linear layers use PyTorch's default init (weights and biases uniform ±1/sqrt(fan_in)).

    Args:
        in_shape: shape of one sample, e.g. ``(28, 28, 1)``.
        hidden: hidden widths.
        negative_slope: LeakyReLU slope.
        dtype: computation dtype (``None``: from the inputs and parameters).
        param_dtype: parameter dtype.
        rngs: initialisation keys.
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (28, 28, 1),
        *,
        hidden: Sequence[int] = (512, 256, 128),
        negative_slope: float = 0.2,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_shape = _shape("in_shape", in_shape)
        self.hidden = _widths("hidden", hidden)
        self.negative_slope = float(negative_slope)
        layer_kwargs = {"dtype": _as_dtype(dtype), "param_dtype": param_dtype, "rngs": rngs}
        widths = (math.prod(self.in_shape), *self.hidden)
        self.hidden_layers = nnx.List(
            [_torch_linear(w_in, w_out, **layer_kwargs) for w_in, w_out in zip(widths[:-1], widths[1:])]
        )
        self.output_layer = _torch_linear(widths[-1], 1, **layer_kwargs)

    def __call__(self, x: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """Scores samples.

        Args:
            x: ``[B, *in_shape]`` samples.
            use_running_average: ignored (no BatchNorm); accepted for a uniform interface.

        Returns:
            ``[B]`` float32 logits.
        """
        del use_running_average
        _check_input("MLPDiscriminator", x, self.in_shape)
        h = x.reshape(x.shape[0], -1)
        for layer in self.hidden_layers:
            h = nnx.leaky_relu(layer(h), negative_slope=self.negative_slope)
        logits = self.output_layer(h)[:, 0]
        return logits.astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# DCGAN
# ---------------------------------------------------------------------------------------------


class DCGANGenerator(nnx.Module):
    """DCGAN generator: project z, upsample with stride-2 transposed convolutions, tanh; NHWC.

    Plan by image side, with b = ``base_width`` and C the channels; the projection and every inner
    ConvTranspose(4x4, stride 2) are followed by BatchNorm -> ReLU, the last ConvTranspose by tanh:

    - 8:  Linear -> 2x2x4b -> 4x4x2b -> 8x8xC
    - 28: Linear -> 7x7x4b -> 14x14x2b -> 28x28xC
    - 32: Linear -> 4x4x4b -> 8x8x2b -> 16x16xb -> 32x32xC

    Weights N(0, 0.02), biases 0 (layers followed by BatchNorm have none), BatchNorm scale 1 and
    bias 0 (the flax default; PyTorch's DCGAN example draws the scale from N(1, 0.02)).

    Args:
        z_dim: latent dimension.
        out_shape: ``(H, W, C)`` with H = W in ``DCGAN_IMAGE_SIDES`` (8, 28, 32).
        base_width: channel unit b.
        dtype: computation dtype (``None``: from the inputs and parameters).
        param_dtype: parameter dtype.
        rngs: initialisation keys.

    Raises:
        ValueError: the image shape is not supported.
    """

    def __init__(
        self,
        z_dim: int = 64,
        out_shape: Sequence[int] = (28, 28, 1),
        *,
        base_width: int = 64,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        start, mults = _dcgan_plan(out_shape)
        self.z_dim = _positive_int("z_dim", z_dim)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.base_width = _positive_int("base_width", base_width)
        layer_kwargs = {"dtype": _as_dtype(dtype), "param_dtype": param_dtype, "rngs": rngs}
        init = _normal_init(_DCGAN_INIT_STD)
        up = {"kernel_size": (4, 4), "strides": (2, 2), "padding": "SAME"}
        channels = [m * self.base_width for m in mults]
        self.start_shape = (start, start, channels[0])
        self.projection = nnx.Linear(
            self.z_dim, math.prod(self.start_shape), use_bias=False, **init, **layer_kwargs
        )
        self.projection_norm = _batch_norm(channels[0], **layer_kwargs)
        self.up_layers = nnx.List(
            [
                nnx.ConvTranspose(c_in, c_out, **up, use_bias=False, **init, **layer_kwargs)
                for c_in, c_out in zip(channels[:-1], channels[1:])
            ]
        )
        self.up_norms = nnx.List([_batch_norm(c, **layer_kwargs) for c in channels[1:]])
        self.output_layer = nnx.ConvTranspose(channels[-1], self.out_shape[2], **up, **init, **layer_kwargs)

    def __call__(self, z: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """Maps latents to images.

        Args:
            z: ``[B, z_dim]`` latents.
            use_running_average: BatchNorm mode; ``None`` keeps the module's (see ``train``/``eval``).

        Returns:
            ``[B, H, W, C]`` images in [-1, 1].
        """
        _check_input("DCGANGenerator", z, (self.z_dim,))
        h = self.projection(z).reshape(z.shape[0], *self.start_shape)
        h = nnx.relu(self.projection_norm(h, use_running_average=use_running_average))
        for layer, norm in zip(self.up_layers, self.up_norms):
            h = nnx.relu(norm(layer(h), use_running_average=use_running_average))
        return jnp.tanh(self.output_layer(h))


class DCGANDiscriminator(nnx.Module):
    """DCGAN discriminator: stride-2 4x4 convolutions with LeakyReLU, then a dense logit; NHWC.

    Widths b, 2b, 4b, ... with b = ``base_width``, one stride-2 convolution per generator upsampling
    (2 for sides 8 and 28, 3 for side 32). With ``batchnorm=True`` every convolution but the first is
    followed by BatchNorm (Radford et al. 2016); the first never is. Weights N(0, 0.02), biases 0.

    Args:
        in_shape: ``(H, W, C)`` with H = W in ``DCGAN_IMAGE_SIDES`` (8, 28, 32).
        base_width: channel unit b.
        negative_slope: LeakyReLU slope.
        batchnorm: BatchNorm after the inner convolutions.
        dtype: computation dtype (``None``: from the inputs and parameters).
        param_dtype: parameter dtype.
        rngs: initialisation keys.

    Raises:
        ValueError: the image shape is not supported.
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (28, 28, 1),
        *,
        base_width: int = 64,
        negative_slope: float = 0.2,
        batchnorm: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        _, mults = _dcgan_plan(in_shape)
        self.in_shape = tuple(int(s) for s in in_shape)
        self.base_width = _positive_int("base_width", base_width)
        self.negative_slope = float(negative_slope)
        self.batchnorm = bool(batchnorm)
        layer_kwargs = {"dtype": _as_dtype(dtype), "param_dtype": param_dtype, "rngs": rngs}
        init = _normal_init(_DCGAN_INIT_STD)
        down = {"kernel_size": (4, 4), "strides": (2, 2), "padding": "SAME"}
        channels = [self.in_shape[2]] + [self.base_width * 2**i for i in range(len(mults))]
        self.conv_layers = nnx.List(
            [
                nnx.Conv(c_in, c_out, **down, use_bias=i == 0 or not self.batchnorm, **init, **layer_kwargs)
                for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))
            ]
        )
        inner_channels = channels[2:] if self.batchnorm else []
        self.norms = nnx.List([_batch_norm(c, **layer_kwargs) for c in inner_channels])
        final_side = self.in_shape[0] // 2 ** len(mults)
        self.output_layer = nnx.Linear(final_side * final_side * channels[-1], 1, **init, **layer_kwargs)

    def __call__(self, x: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """Scores images.

        Args:
            x: ``[B, H, W, C]`` images in [-1, 1].
            use_running_average: BatchNorm mode; ``None`` keeps the module's (see ``train``/``eval``).

        Returns:
            ``[B]`` float32 logits.
        """
        _check_input("DCGANDiscriminator", x, self.in_shape)
        h = x
        for i, layer in enumerate(self.conv_layers):
            h = layer(h)
            if self.batchnorm and i > 0:
                h = self.norms[i - 1](h, use_running_average=use_running_average)
            h = nnx.leaky_relu(h, negative_slope=self.negative_slope)
        logits = self.output_layer(h.reshape(h.shape[0], -1))[:, 0]
        return logits.astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# 2-D toy MLPs (PacGAN setting)
# ---------------------------------------------------------------------------------------------


class ToyGenerator(nnx.Module):
    """2-D toy generator: (Linear -> [BatchNorm] -> ReLU) per hidden width, then Linear(out_dim).

    The defaults are PacGAN's 2-D setting (4 x 400 units with BatchNorm, N(0, 0.02) init); the small
    sweep configuration is ``hidden=(128, 128), batchnorm=False, init_std=None``.

    Args:
        z_dim: latent dimension.
        out_dim: sample dimension.
        hidden: hidden widths.
        batchnorm: BatchNorm after each hidden Linear.
        init_std: Linear weights N(0, init_std) and zero biases; ``None``: flax default init.
        dtype: computation dtype (``None``: from the inputs and parameters).
        param_dtype: parameter dtype.
        rngs: initialisation keys.
    """

    def __init__(
        self,
        z_dim: int = 2,
        out_dim: int = 2,
        *,
        hidden: Sequence[int] = (400, 400, 400, 400),
        batchnorm: bool = True,
        init_std: float | None = 0.02,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.z_dim = _positive_int("z_dim", z_dim)
        self.out_dim = _positive_int("out_dim", out_dim)
        self.hidden = _widths("hidden", hidden)
        self.batchnorm = bool(batchnorm)
        layer_kwargs = {"dtype": _as_dtype(dtype), "param_dtype": param_dtype, "rngs": rngs}
        init = _normal_init(init_std)
        widths = (self.z_dim, *self.hidden)
        self.hidden_layers = nnx.List(
            [nnx.Linear(w_in, w_out, **init, **layer_kwargs) for w_in, w_out in zip(widths[:-1], widths[1:])]
        )
        self.norms = nnx.List([_batch_norm(w, **layer_kwargs) for w in self.hidden] if self.batchnorm else [])
        self.output_layer = nnx.Linear(widths[-1], self.out_dim, **init, **layer_kwargs)

    def __call__(self, z: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """Maps latents to points.

        Args:
            z: ``[B, z_dim]`` latents.
            use_running_average: BatchNorm mode; ``None`` keeps the module's (see ``train``/``eval``).

        Returns:
            ``[B, out_dim]`` points (unbounded).
        """
        _check_input("ToyGenerator", z, (self.z_dim,))
        h = z
        for i, layer in enumerate(self.hidden_layers):
            h = layer(h)
            if self.batchnorm:
                h = self.norms[i](h, use_running_average=use_running_average)
            h = nnx.relu(h)
        return self.output_layer(h)


class ToyDiscriminator(nnx.Module):
    """2-D toy discriminator with packing: a maxout (or LeakyReLU) MLP giving one logit per pack.

    Packing (Lin et al. 2018, PacGAN): the ``pack`` consecutive samples ``x[j*pack:(j+1)*pack]`` are
    concatenated into one input of width ``pack * in_dim``, so a batch ``[B, in_dim]`` becomes
    ``[B // pack, pack * in_dim]`` and labels are per pack. A hidden layer of width w is, with
    ``maxout_pieces`` p > 1, Linear to w * p units and a max over each unit's p pieces (maxout,
    Goodfellow et al. 2013); with p = 1, Linear -> LeakyReLU(``negative_slope``). The defaults are
    PacGAN's 2-D setting (3 maxout layers of 200 units x 5 pieces, N(0, 0.02) init); the small sweep
    configuration is ``hidden=(128, 128), maxout_pieces=1, init_std=None``.

    Args:
        in_dim: sample dimension.
        pack: samples per discriminator input (k).
        hidden: hidden widths (after the maxout).
        maxout_pieces: pieces per maxout unit; 1 means LeakyReLU instead.
        negative_slope: LeakyReLU slope (unused with maxout).
        init_std: Linear weights N(0, init_std) and zero biases; ``None``: flax default init.
        dtype: computation dtype (``None``: from the inputs and parameters).
        param_dtype: parameter dtype.
        rngs: initialisation keys.
    """

    def __init__(
        self,
        in_dim: int = 2,
        *,
        pack: int = 1,
        hidden: Sequence[int] = (200, 200, 200),
        maxout_pieces: int = 5,
        negative_slope: float = 0.2,
        init_std: float | None = 0.02,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_dim = _positive_int("in_dim", in_dim)
        self.pack = _positive_int("pack", pack)
        self.hidden = _widths("hidden", hidden)
        self.maxout_pieces = _positive_int("maxout_pieces", maxout_pieces)
        self.negative_slope = float(negative_slope)
        layer_kwargs = {"dtype": _as_dtype(dtype), "param_dtype": param_dtype, "rngs": rngs}
        init = _normal_init(init_std)
        widths = (self.pack * self.in_dim, *self.hidden)
        self.hidden_layers = nnx.List(
            [
                nnx.Linear(w_in, w_out * self.maxout_pieces, **init, **layer_kwargs)
                for w_in, w_out in zip(widths[:-1], widths[1:])
            ]
        )
        self.output_layer = nnx.Linear(widths[-1], 1, **init, **layer_kwargs)

    def __call__(self, x: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """Scores packs of points.

        Args:
            x: ``[B, in_dim]`` points, B divisible by ``pack``.
            use_running_average: ignored (no BatchNorm); accepted for a uniform interface.

        Returns:
            ``[B // pack]`` float32 logits, one per pack.

        Raises:
            ValueError: (at trace time) B is not divisible by ``pack``, or x has the wrong shape.
        """
        del use_running_average
        _check_input("ToyDiscriminator", x, (self.in_dim,))
        batch_size = x.shape[0]
        if batch_size % self.pack:
            raise ValueError(
                f"ToyDiscriminator: batch size B={batch_size} is not divisible by pack={self.pack}"
            )
        h = x.reshape(batch_size // self.pack, self.pack * self.in_dim)
        for layer in self.hidden_layers:
            h = layer(h)
            if self.maxout_pieces > 1:
                h = h.reshape(h.shape[0], -1, self.maxout_pieces).max(axis=-1)
            else:
                h = nnx.leaky_relu(h, negative_slope=self.negative_slope)
        logits = self.output_layer(h)[:, 0]
        return logits.astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------

_DEFAULT_Z_DIM = {"mlp": 64, "dcgan": 64, "toy": 2}
_OUTPUT_RANGE: dict[str, tuple[float, float] | None] = {"mlp": (0.0, 1.0), "dcgan": (-1.0, 1.0), "toy": None}

# Constructor keywords that create_models passes on: (generator's, discriminator's) per model.
_PRECISION = ("dtype", "param_dtype")
_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mlp": (("hidden", *_PRECISION), ("hidden", "negative_slope", *_PRECISION)),
    "dcgan": (("base_width", *_PRECISION), ("base_width", "negative_slope", "batchnorm", *_PRECISION)),
    "toy": (
        ("hidden", "batchnorm", "init_std", *_PRECISION),
        ("pack", "hidden", "maxout_pieces", "negative_slope", "init_std", *_PRECISION),
    ),
}


def _check_model(model: str) -> None:
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}")


def default_z_dim(model: str) -> int:
    """Latent dimension ``create_models`` uses when given none: mlp 64, dcgan 64, toy 2."""
    _check_model(model)
    return _DEFAULT_Z_DIM[model]


def output_range(model: str) -> tuple[float, float] | None:
    """Range of the generator's outputs, to which the data must be scaled.

    Returns:
        ``(0.0, 1.0)`` for mlp (sigmoid), ``(-1.0, 1.0)`` for dcgan (tanh), ``None`` (unbounded) for toy.
    """
    _check_model(model)
    return _OUTPUT_RANGE[model]


def allowed_options(model: str) -> tuple[str, ...]:
    """The keyword options ``create_models`` accepts for ``model``, sorted."""
    _check_model(model)
    g_opts, d_opts = _OPTIONS[model]
    return tuple(sorted({*g_opts, *d_opts, *(f"g_{o}" for o in g_opts), *(f"d_{o}" for o in d_opts)}))


def _route_options(model: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    allowed = allowed_options(model)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for model {model!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    g_opts, d_opts = _OPTIONS[model]
    g_kwargs = {o: options[o] for o in g_opts if o in options}
    d_kwargs = {o: options[o] for o in d_opts if o in options}
    g_kwargs.update({o: options[f"g_{o}"] for o in g_opts if f"g_{o}" in options})
    d_kwargs.update({o: options[f"d_{o}"] for o in d_opts if f"d_{o}" in options})
    return g_kwargs, d_kwargs


def create_models(
    model: str,
    data_shape: tuple[int, ...],
    *,
    rngs: nnx.Rngs,
    z_dim: int | None = None,
    **kwargs: Any,
) -> tuple[nnx.Module, nnx.Module]:
    """Builds a generator and a discriminator for samples of one shape.

    Options are routed by name: ``g_<option>`` goes to the generator, ``d_<option>`` to the
    discriminator, a bare ``<option>`` to every network that has it, and a prefixed option wins over
    the bare one. E.g. the small toy sweep configuration with packing 4 is ``create_models("toy", (2,),
    rngs=rngs, hidden=(128, 128), batchnorm=False, maxout_pieces=1, init_std=None, pack=4)``.

    - mlp: G ``hidden``; D ``hidden``, ``negative_slope``.
    - dcgan: G ``base_width``; D ``base_width``, ``negative_slope``, ``batchnorm``.
    - toy: G ``hidden``, ``batchnorm``, ``init_std``; D ``pack``, ``hidden``, ``maxout_pieces``,
      ``negative_slope``, ``init_std``.
    - all: G and D ``dtype``, ``param_dtype``.

    Args:
        model: one of ``MODEL_NAMES``.
        data_shape: shape of one sample: ``(H, W, C)`` images for mlp and dcgan, ``(D,)`` for toy.
        rngs: initialisation keys (the generator is built first).
        z_dim: latent dimension; ``None``: ``default_z_dim(model)``.
        **kwargs: network options, as above.

    Returns:
        ``(generator, discriminator)``, both in training mode.

    Raises:
        ValueError: an unknown model or option, or a data shape the model does not support.
    """
    _check_model(model)
    g_kwargs, d_kwargs = _route_options(model, kwargs)
    z_dim = default_z_dim(model) if z_dim is None else z_dim
    data_shape = tuple(data_shape)
    if model == "mlp":
        return (
            MLPGenerator(z_dim, data_shape, rngs=rngs, **g_kwargs),
            MLPDiscriminator(data_shape, rngs=rngs, **d_kwargs),
        )
    if model == "dcgan":
        return (
            DCGANGenerator(z_dim, data_shape, rngs=rngs, **g_kwargs),
            DCGANDiscriminator(data_shape, rngs=rngs, **d_kwargs),
        )
    if len(data_shape) != 1:
        raise ValueError(f"model 'toy' expects data_shape (D,), e.g. (2,); got {data_shape}")
    return (
        ToyGenerator(z_dim, data_shape[0], rngs=rngs, **g_kwargs),
        ToyDiscriminator(data_shape[0], rngs=rngs, **d_kwargs),
    )
