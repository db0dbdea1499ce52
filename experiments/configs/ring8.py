"""ring8: the default 2-D run and the default sweep (the README's main job).

Eight Gaussians on a circle of radius 1, std 0.01 (PacGAN's setting); z 2-d; G and D two hidden layers
of 128 (ReLU in G, LeakyReLU 0.2 in D, no BatchNorm); Adam betas (0.9, 0.999); 6,000 steps.

    python -m experiments.train                  # one run, lr 1e-3, m 64: ~20 s on a 2-core CPU
    python -m experiments.sweep                  # lr {1e-4,3e-4,1e-3,3e-3} x m {32,64,128,256} x 3 seeds: 87 s

Writes the usual run / sweep files (see experiments/train.py and experiments/sweep.py).
"""


def get_config():
    return dict(
        dataset="ring8",
        model="toy",
        model_options=dict(hidden=(128, 128), batchnorm=False, maxout_pieces=1, init_std=None),
        learning_rate=1e-3,
        adam_b1=0.9,
        adam_b2=0.999,
        batch_size=64,
        num_steps=6000,
        log_every=200,
        checkpoint_every=2000,
    )


def get_sweep():
    return dict(learning_rate=[1e-4, 3e-4, 1e-3, 3e-3], batch_size=[32, 64, 128, 256], seed=[0, 1, 2])
