"""Plot the binary cross-entropy against the prediction h, and work one mini-batch by hand.

Run:

    python -m experiments.bce_curves --out runs/bce_curves

Runtime: about 5 s on a laptop CPU (mostly importing jax and matplotlib).

Writes ``OUT/bce_curves.png``: the loss of one example against its prediction h ∈ (0, 1), for the
label y = 1 (−log h) and the label y = 0 (−log(1 − h)), both computed with
``bce(..., reduction="none")``; the course's examples are marked (label 1 with h = 0.99: a loss near
0; label 1 with h near 0: a loss heading to infinity).

Prints a worked mini-batch of m = 5 predictions, one labelled 1 and four labelled 0: a table of each
example's h, y and loss (``reduction="none"``), then their mean, the cost J (``reduction="mean"``):

    J = −(1/m) Σᵢ [yᵢ log hᵢ + (1 − yᵢ) log(1 − hᵢ)].
"""

from __future__ import annotations

import argparse
import os
import tempfile

import jax.numpy as jnp
import numpy as np

from bce_gan.losses import bce

# The worked example: m = 5 predictions h for one real example (y = 1) and four fakes (y = 0).
EXAMPLE_PROBS = (0.9, 0.2, 0.05, 0.6, 0.3)
EXAMPLE_LABELS = (1.0, 0.0, 0.0, 0.0, 0.0)


def loss_curves(num: int = 2001) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-example loss over a grid of predictions h ∈ (0, 1), for y = 1 and y = 0.

    Returns:
        ``(h, loss_y1, loss_y0)``, three ``[num]`` float64 arrays. The grid is dense near both ends
        (where the loss grows without bound) and excludes 0 and 1 themselves.
    """
    t = np.linspace(-7.0, 7.0, num)
    h = 1.0 / (1.0 + np.exp(-t))  # logistic grid: as dense at h = 1e−3 as at h = 0.5
    h_j = jnp.asarray(h, jnp.float32)
    loss_y1 = np.asarray(bce(h_j, jnp.ones_like(h_j), reduction="none"), np.float64)
    loss_y0 = np.asarray(bce(h_j, jnp.zeros_like(h_j), reduction="none"), np.float64)
    return np.asarray(h_j, np.float64), loss_y1, loss_y0  # the float32 values bce saw


def worked_example(probs=EXAMPLE_PROBS, labels=EXAMPLE_LABELS) -> tuple[np.ndarray, float]:
    """The per-example losses (``reduction="none"``) and their mean, the cost J (``"mean"``)."""
    h = jnp.asarray(probs, jnp.float32)
    y = jnp.asarray(labels, jnp.float32)
    rows = np.asarray(bce(h, y, reduction="none"), np.float64)
    cost = float(bce(h, y, reduction="mean"))
    return rows, cost


def format_worked_example(probs, labels, rows, cost) -> str:
    lines = [
        f"Worked mini-batch: m = {len(probs)} predictions, "
        f"{int(sum(labels))} labelled 1 and {len(labels) - int(sum(labels))} labelled 0",
        f"{'i':>3}  {'h':>8}  {'y':>3}  {'loss':>10}",
    ]
    for i, (h, y, loss) in enumerate(zip(probs, labels, rows), start=1):
        term = "-log(h)" if y == 1 else "-log(1-h)"
        lines.append(f"{i:>3}  {h:>8.4f}  {int(y):>3d}  {loss:>10.6f}   {term}")
    lines.append(f"mean = J = {cost:.6f}")
    return "\n".join(lines)


def plot_curves(path: str, h: np.ndarray, loss_y1: np.ndarray, loss_y0: np.ndarray) -> None:
    """Draws the two curves with the course's examples marked and writes a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(h, loss_y1, color="tab:blue", label="y = 1: loss = −log h")
    ax.plot(h, loss_y0, color="tab:orange", label="y = 0: loss = −log(1 − h)")

    # The course's examples, with the values bce itself returns.
    h_good, h_bad = 0.99, 0.01
    loss_good = float(bce(jnp.float32(h_good), 1.0))
    loss_bad = float(bce(jnp.float32(h_bad), 1.0))
    ax.plot([h_good], [loss_good], "o", color="tab:green", zorder=3, clip_on=False)
    ax.annotate(f"y = 1, h = {h_good}: loss = {loss_good:.3f} ≈ 0",
                xy=(h_good, loss_good), xytext=(0.45, 2.2),
                arrowprops={"arrowstyle": "->", "color": "tab:green"})
    ax.plot([h_bad], [loss_bad], "o", color="tab:red", zorder=3)
    ax.annotate(f"y = 1, h = {h_bad}: loss = {loss_bad:.2f}\n(→ ∞ as h → 0)",
                xy=(h_bad, loss_bad), xytext=(0.12, 5.2),
                arrowprops={"arrowstyle": "->", "color": "tab:red"})

    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 7.0)
    ax.set_xlabel("prediction h (probability that the label is 1)")
    ax.set_ylabel("loss of one example")
    ax.set_title("Binary cross-entropy: each label has its own term")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center")
    fig.tight_layout()

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bce_curves.", suffix=".png.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bce_curves", help="output directory (created)")
    args = parser.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "bce_curves.png")
    h, loss_y1, loss_y0 = loss_curves()
    plot_curves(path, h, loss_y1, loss_y0)

    rows, cost = worked_example()
    print(format_worked_example(EXAMPLE_PROBS, EXAMPLE_LABELS, rows, cost))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
