"""pacgan_grid: PacGAN's 2-D grid experiment (Lin et al. 2018, Table 1), plain GAN.

25 Gaussians at {-4,-2,0,2,4}^2, std 0.05; the PacGAN architecture and optimizer as in pacgan_ring.
Packing: add ``--model-option pack=4 --batch-size 400`` (the paper's mini-batch is 100 packs of k points).

    python -m experiments.train --preset pacgan_grid        # ~5 min on a 2-core CPU (64 it/s)
"""

from experiments.configs import pacgan_ring


def get_config():
    return dict(pacgan_ring.get_config(), dataset="grid25")


def get_sweep():
    return dict(seed=list(range(10)))
