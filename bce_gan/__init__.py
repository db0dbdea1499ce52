"""bce_gan: GANs trained with binary cross-entropy, in JAX.

Importing the package (or :mod:`bce_gan.losses`) needs jax alone; the training stack
(flax, optax, tensorflow-datasets, ...) lives in submodules that are imported on demand.
"""

from bce_gan.losses import bce, bce_with_logits, discriminator_loss, generator_loss

__all__ = ["bce", "bce_with_logits", "discriminator_loss", "generator_loss"]
__version__ = "0.1.0"
