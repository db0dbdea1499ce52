"""Pictures and tables from results: sample grids and scatter plots (matplotlib, Agg backend).

Reporting reads arrays and result files; it never reaches into training internals.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from bce_gan import io

__all__ = ["image_grid", "plot_samples", "save_samples"]


def _pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def image_grid(images: np.ndarray, value_range: tuple[float, float] | None, columns: int | None = None) -> np.ndarray:
    """Tiles ``[n, H, W, C]`` images into one ``[rows·(H+1), columns·(W+1), C]`` picture in [0, 1]."""
    images = np.asarray(images, np.float32)
    lo, hi = value_range if value_range is not None else (float(images.min()), float(images.max()))
    images = np.clip((images - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = image
    return grid


def plot_samples(ax, samples: np.ndarray, *, dataset: Any = None, title: str | None = None, max_images: int = 64) -> None:
    """Draws samples on ``ax``: an image grid, or for 2-D data a scatter with the true modes."""
    samples = np.asarray(samples)
    modes = None if dataset is None else dataset.info.get("modes")
    if samples.ndim == 2:
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:blue", label="generated")
        if modes is not None:
            modes = np.asarray(modes)
            ax.scatter(modes[:, 0], modes[:, 1], s=40, marker="x", color="tab:red", label="true modes")
            span = np.abs(modes).max() * 1.5 + 3 * dataset.info.get("std", 0.0)
            ax.set_xlim(-span, span)
            ax.set_ylim(-span, span)
        ax.set_aspect("equal")
    else:
        value_range = None if dataset is None else dataset.value_range
        grid = image_grid(samples[:max_images], value_range)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def save_samples(samples: np.ndarray, path: str | os.PathLike, *, dataset: Any = None, title: str | None = None) -> None:
    """Writes a PNG of ``samples`` (see :func:`plot_samples`) atomically."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    plot_samples(ax, samples, dataset=dataset, title=title)
    if np.asarray(samples).ndim == 2:
        ax.legend(loc="upper right", fontsize=7)
    io.save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)
