"""pacgan_ring: PacGAN's 2-D ring experiment (Lin et al. 2018, Table 1), plain GAN.

Ring of 8 Gaussians, radius 1, std 0.01; G 2 -> 4 x [400, BatchNorm, ReLU] -> 2; D 3 maxout layers of
200 units x 5 pieces -> 1; weights N(0, 0.02); Adam lr 1e-4, beta1 0.8; m = 100. Packing: add
``--model-option pack=2 --batch-size 200`` (the paper's mini-batch is 100 packs of k points). 20,000
steps; the paper trains 400,000 (``python -m experiments.reproduce_pacgan``).

    python -m experiments.train --preset pacgan_ring        # ~5 min on a 2-core CPU (64 it/s)
"""


def get_config():
    return dict(
        dataset="ring8",
        model="toy",
        model_options=dict(hidden=(400, 400, 400, 400), batchnorm=True, maxout_pieces=5, init_std=0.02),
        learning_rate=1e-4,
        adam_b1=0.8,
        adam_b2=0.999,
        batch_size=100,
        num_steps=20000,
        log_every=500,
        checkpoint_every=5000,
    )


def get_sweep():
    return dict(seed=list(range(10)))
