"""course_digits: the course's MLP GAN on scikit-learn's 8x8 digits (offline, no download).

The course_mnist model and optimizer (Adam lr 1e-5, betas (0.9, 0.999), m = 128) on 8x8 images, so the
course's early dynamics can be seen on real data without MNIST: both losses start at ~ln 2, the
discriminator wins first, then the generator's loss climbs above 1.

    python -m experiments.train --preset course_digits      # ~3 min on a 2-core CPU
"""


from experiments.configs import course_mnist


def get_config():
    steps = dict(num_steps=10_000, log_every=250, sample_every=2500, checkpoint_every=2500)
    return dict(course_mnist.get_config(), dataset="digits", **steps)


def get_sweep():
    return dict(learning_rate=[1e-5, 1e-4, 1e-3], batch_size=[32, 128, 512], seed=[0, 1])
