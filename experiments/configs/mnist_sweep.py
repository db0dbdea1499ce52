"""mnist_sweep: the lr x m map of the course MLP GAN on MNIST, ranked by classifier FD.

As digits_sweep, on 28x28 MNIST (needs MNIST prepared in TFDS: ``python -m bce_gan.data show mnist``
prints the command), 10,000 steps, 1,000 generated samples per run, the classifier a LeNet-size CNN.

    python -m experiments.sweep --preset mnist_sweep        # not run here (no MNIST offline); estimated ~3 h on 2 cores
"""

from experiments.configs import course_mnist


def get_config():
    steps = dict(num_steps=10_000, log_every=500, sample_every=0, checkpoint_every=2500, num_samples=1000)
    return dict(course_mnist.get_config(), **steps)


def get_sweep():
    return dict(learning_rate=[1e-4, 3e-4, 1e-3], batch_size=[32, 64, 128], seed=[0, 1])
