"""digits_sweep: the lr x m map of the course MLP GAN on 8x8 digits (offline), ranked by classifier FD.

The course MLP GAN (z 64, G 128-256-512-1024 with BatchNorm, D 512-256-128 LeakyReLU 0.2, sigmoid
output) on scikit-learn's digits; Adam betas (0.9, 0.999); 3,000 steps; 300 generated samples per run
scored by a small digits classifier trained in the project (Fréchet distance and KID on its
penultimate features against held-out digits, with the real-vs-real baseline; class histogram KL).

    python -m experiments.sweep --preset digits_sweep       # lr {1e-4,3e-4,1e-3} x m {32,64,128} x 2 seeds (README has the time)
"""

from experiments.configs import course_digits


def get_config():
    steps = dict(num_steps=3000, log_every=250, sample_every=0, checkpoint_every=1000, num_samples=300)
    return dict(course_digits.get_config(), **steps)


def get_sweep():
    return dict(learning_rate=[1e-4, 3e-4, 1e-3], batch_size=[32, 64, 128], seed=[0, 1])
