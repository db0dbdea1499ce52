"""course_mnist: the course's MNIST MLP GAN.

z 64; G 64 -> 128 -> 256 -> 512 -> 1024 (Linear, BatchNorm, ReLU) -> 784 sigmoid; D 784 -> 512 -> 256 ->
128 (LeakyReLU 0.2) -> 1 logit; BCE with logits, D loss the average of the real and fake terms, G
non-saturating on fresh noise; Adam lr 1e-5, betas (0.9, 0.999); m = 128; 200 epochs = 93,750 steps.
At initialisation both losses are ~0.69 (ln 2); the course's run ends near G 1.1-1.25, D 0.48-0.54.

Needs MNIST prepared in TFDS (``python -m bce_gan.data show mnist`` prints the command).

    python -m experiments.train --preset course_mnist       # ~35 min on a 2-core CPU (44 it/s at m 128)
"""


def get_config():
    return dict(
        dataset="mnist",
        model="mlp",
        learning_rate=1e-5,
        adam_b1=0.9,
        adam_b2=0.999,
        batch_size=128,
        num_steps=93_750,
        log_every=500,
        sample_every=5000,
        checkpoint_every=5000,
        num_samples=64,
    )


def get_sweep():
    return dict(learning_rate=[1e-5, 1e-4, 1e-3], batch_size=[32, 128, 512], seed=[0, 1])
