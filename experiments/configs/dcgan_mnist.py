"""dcgan_mnist: the course's DCGAN on MNIST (week 2).

lr 2e-4, betas (0.5, 0.999), m = 128, z 64, weights N(0, 0.02), pixels in [-1, 1], tanh output.
Needs MNIST prepared in TFDS.

    python -m experiments.train --preset dcgan_mnist        # not timed here: estimated ~1 h on a 2-core CPU
"""


from experiments.configs import course_digits


def get_config():
    return dict(course_digits.get_config(), dataset="mnist", model="dcgan", learning_rate=2e-4, adam_b1=0.5)
