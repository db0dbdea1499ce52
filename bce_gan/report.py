"""Pictures and tables from results: sample grids, scatter plots, sweep tables and plots.

Two parts:

* Samples (used by training): :func:`image_grid`, :func:`plot_samples`, :func:`save_samples`.
* Sweeps (used by ``bce_gan.sweep`` on the files a sweep leaves on disk): :func:`write_results_csv` /
  :func:`read_results_csv` (one row per run), :func:`summarize` and :func:`write_summary` (mean ± std
  over seeds per learning rate × batch size m), :func:`plot_heatmap`, :func:`plot_curves` and
  :func:`plot_sample_panels` (one panel per lr × m).

Reporting reads arrays and result files; it never reaches into training internals (it imports numpy,
matplotlib (Agg backend, on first use) and :mod:`bce_gan.io`, never jax). Every file is written
atomically through :mod:`bce_gan.io`; a plot that fails midway leaves no file and no open figure.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from io import StringIO
from typing import Any

import numpy as np

from bce_gan import io

__all__ = [
    "image_grid",
    "plot_samples",
    "save_samples",
    "write_results_csv",
    "read_results_csv",
    "summarize",
    "write_summary",
    "plot_heatmap",
    "plot_curves",
    "plot_sample_panels",
]


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


# pyplot's figure manager is not thread-safe; sweeps train populations in threads.
_PYPLOT_LOCK = threading.Lock()


def save_samples(samples: np.ndarray, path: str | os.PathLike, *, dataset: Any = None, title: str | None = None) -> None:
    """Writes a PNG of ``samples`` (see :func:`plot_samples`) atomically. Thread-safe."""
    with _PYPLOT_LOCK:
        _save_samples(samples, path, dataset=dataset, title=title)


def _save_samples(samples, path, *, dataset, title) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        plot_samples(ax, samples, dataset=dataset, title=title)
        if np.asarray(samples).ndim == 2:
            ax.legend(loc="upper right", fontsize=7)
        io.save_figure(fig, path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------------------
# Sweep results: results.csv, summaries
# --------------------------------------------------------------------------------------

# Column order of results.csv: run_id, population, the swept options, seed, the final metrics, then
# diverged, diverged_step, wall_time_s. Keys not named here are placed by where they first appear in a
# row: before any of the metrics below (other swept options) or after one (other metrics).
_LEADING_COLUMNS = ("run_id", "population", "learning_rate", "batch_size")
_METRIC_COLUMNS = (
    "step", "d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm",
    "modes", "high_quality", "reverse_kl", "no_high_quality",
)  # fmt: skip
_TRAILING_COLUMNS = ("diverged", "diverged_step", "wall_time_s")
_STRING_COLUMNS = ("run_id", "population")  # read back as text even where they look like numbers
# Numeric columns that summarize() does not average unless asked to.
_NOT_SUMMARIZED = ("seed", "step", "diverged", "diverged_step", "wall_time_s", "no_high_quality")
_PERCENT_METRICS = ("high_quality", "no_high_quality")  # fractions in [0, 1], shown as %
_SHORT_NAMES = {"learning_rate": "lr", "batch_size": "m"}
_AXIS_LABELS = {"learning_rate": "learning rate", "batch_size": "batch size m"}
_CURVE_LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}
_MISSING_COLOR = "lightgrey"

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)
_BOOLS = {"True": True, "False": False, "true": True, "false": False}


def _default_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of ``rows`` in the stable results.csv order (see ``_LEADING_COLUMNS``)."""
    known = {*_LEADING_COLUMNS, "seed", *_METRIC_COLUMNS, *_TRAILING_COLUMNS}
    seen: dict[str, None] = {}
    options: dict[str, None] = {}  # unknown keys seen before any metric in their row
    others: dict[str, None] = {}
    for row in rows:
        after_metric = False
        for key in row:
            after_metric = after_metric or key in _METRIC_COLUMNS
            if key not in seen:
                seen[key] = None
                if key not in known:
                    (others if after_metric else options)[key] = None
    ordered = [*_LEADING_COLUMNS, *options, "seed", *_METRIC_COLUMNS, *others, *_TRAILING_COLUMNS]
    return [key for key in ordered if key in seen]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # the shortest text that reads back as the same float
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _parse_cell(text: str) -> Any:
    """The value of a non-empty cell; ValueError if it is plain text."""
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT_RE.fullmatch(text):
        return int(text)
    if _FLOAT_RE.fullmatch(text):
        return float(text)
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    raise ValueError(text)


def write_results_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Writes one CSV row per run, atomically.

    Args:
      path: the CSV file.
      rows: dicts (one per run); a key a row lacks, or a None, is written as an empty cell.
      columns: the columns, in order; keys of ``rows`` not among them are left out. Default: every key,
        ordered run_id, population, learning_rate, batch_size, other swept options, seed, the final
        metrics (step, d_loss, g_loss, d_real, d_fake, d_grad_norm, g_grad_norm, modes, high_quality,
        reverse_kl, no_high_quality, others), diverged, diverged_step, wall_time_s.

    Floats are written with ``repr`` (so :func:`read_results_csv` gives back the same numbers, NaN and
    inf included), bools as True/False, lists and dicts as JSON.
    """
    rows = list(rows)
    columns = _default_columns(rows) if columns is None else list(columns)
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    io.write_text(path, buffer.getvalue())


def read_results_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a CSV written by :func:`write_results_csv`, with their types back.

    Per cell: True/False -> bool, integer text -> int, other numbers (nan, inf too) -> float, JSON
    lists/dicts -> list/dict. A column holding any other text is read as text throughout (run_id and
    population always are). Empty cells of other columns are left out of their row.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return []
        table = [cells + [""] * (len(header) - len(cells)) for cells in reader if cells]
    text_columns = set(_STRING_COLUMNS)
    for j, column in enumerate(header):
        for cells in table:
            if cells[j]:
                try:
                    _parse_cell(cells[j])
                except ValueError:
                    text_columns.add(column)
                    break
    rows = []
    for cells in table:
        row = {}
        for column, text in zip(header, cells):
            if column in text_columns:
                row[column] = text
            elif text:
                row[column] = _parse_cell(text)
        rows.append(row)
    return rows


def _sort_key(value: Any) -> tuple:
    """Numbers first (by value), then text, then missing values."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, (bool, int, float, np.number)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _group(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[tuple, list[Mapping[str, Any]]]:
    """``rows`` grouped by their values of ``keys`` (a missing key counts as None), keys sorted."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(_hashable(row.get(k)) for k in keys), []).append(row)
    return dict(sorted(groups.items(), key=lambda kv: tuple(_sort_key(v) for v in kv[0])))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _numeric_columns(rows: Sequence[Mapping[str, Any]], exclude: Iterable[str]) -> list[str]:
    exclude = set(exclude)
    columns = []
    for column in _default_columns(rows):
        values = [row[column] for row in rows if row.get(column) is not None]
        if column not in exclude and values and all(_is_number(v) for v in values):
            columns.append(column)
    return columns


def _as_float(value: Any, metric: str, row: Mapping[str, Any]) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        raise ValueError(f"metric {metric!r} of run {row.get('run_id')!r} is not a number: {value!r}")
    return float(value)


def summarize(
    rows: Iterable[Mapping[str, Any]],
    *,
    by: Sequence[str] = ("learning_rate", "batch_size"),
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Mean ± std over seeds of each metric, one row per configuration.

    Args:
      rows: one dict per run (as in results.csv).
      by: the keys whose values make a configuration; the other runs of one configuration (its seeds,
        and any other option not in ``by``) are pooled.
      metrics: the metrics to average. Default: every numeric column except the ``by`` keys, seed,
        step, diverged, diverged_step, wall_time_s and no_high_quality (other swept numeric options,
        such as adam_b1, are averaged too unless they are in ``by``).

    Returns:
      One dict per distinct value of ``by``, sorted by it: the ``by`` values, ``num_seeds`` (runs in the
      configuration), ``num_diverged`` (runs with a true ``diverged``), and per metric
      ``<metric>_mean`` and ``<metric>_std``: the mean and the sample standard deviation (ddof=1) over
      the runs whose value is finite; the std is 0.0 when one run is finite, both are NaN when none is.
    """
    rows = list(rows)
    by = tuple(by)
    if metrics is None:
        metrics = _numeric_columns(rows, exclude=(*by, *_NOT_SUMMARIZED))
    summary = []
    for members in _group(rows, by).values():
        out: dict[str, Any] = {key: members[0].get(key) for key in by}
        out["num_seeds"] = len(members)
        out["num_diverged"] = sum(bool(row.get("diverged", False)) for row in members)
        for metric in metrics:
            values = np.array([_as_float(row.get(metric), metric, row) for row in members], np.float64)
            finite = values[np.isfinite(values)]
            out[f"{metric}_mean"] = float(finite.mean()) if finite.size else math.nan
            out[f"{metric}_std"] = float(finite.std(ddof=1)) if finite.size > 1 else (0.0 if finite.size else math.nan)
        summary.append(out)
    return summary


def _summary_metrics(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics of a summary: the names with both ``<name>_mean`` and ``<name>_std``."""
    keys: dict[str, None] = {}
    for row in summary:
        keys.update(dict.fromkeys(row))
    return [key[: -len("_mean")] for key in keys if key.endswith("_mean") and f"{key[: -len('_mean')]}_std" in keys]


def _format_lr(value: Any) -> str:
    """A learning rate as ``1e-4``, ``3e-4``, ``2.5e-3``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v) or v <= 0:
        return f"{v:g}"
    mantissa, exponent = f"{v:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _format_setting(key: str, value: Any) -> str:
    if key == "learning_rate" or key.endswith("_learning_rate"):
        return _format_lr(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def _panel_label(lr: Any, batch_size: Any) -> str:
    return f"lr={_format_lr(lr)}, m={_format_setting('batch_size', batch_size)}"


def _format_number(metric: str, value: float, digits: int = 3) -> str:
    if metric in _PERCENT_METRICS:
        return f"{100 * value:.1f}%"
    text = f"{value:.{digits}g}"
    return "0" if text == "-0" else text


def _format_mean_std(metric: str, mean: Any, std: Any) -> str:
    mean = math.nan if mean is None else float(mean)
    std = math.nan if std is None else float(std)
    if not math.isfinite(mean):
        return ""
    if not math.isfinite(std):
        return _format_number(metric, mean)
    if abs(std) <= 1e-9 * abs(mean):  # rounding noise of equal values
        std = 0.0
    return f"{_format_number(metric, mean)} ± {_format_number(metric, std, 2)}"


def _missing_label(summary_row: Mapping[str, Any] | None) -> str:
    """What an empty cell says: "diverged" when every run of the configuration diverged, else "n/a"."""
    if summary_row is not None:
        runs, diverged = summary_row.get("num_seeds") or 0, summary_row.get("num_diverged") or 0
        if runs and diverged >= runs:
            return "diverged"
    return "n/a"


def _markdown_table(summary: Sequence[Mapping[str, Any]], metrics: Sequence[str], by: Sequence[str]) -> str:
    header = [_SHORT_NAMES.get(key, key) for key in by] + list(metrics) + ["seeds", "diverged"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    for row in summary:
        cells = [_format_setting(key, row.get(key)) for key in by]
        for metric in metrics:
            cells.append(_format_mean_std(metric, row.get(f"{metric}_mean"), row.get(f"{metric}_std")) or _missing_label(row))
        cells += [str(row.get("num_seeds", "")), str(row.get("num_diverged", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(
    workdir: str | os.PathLike,
    summary: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] | None = None,
    by: Sequence[str] = ("learning_rate", "batch_size"),
) -> str:
    """Writes ``summary.csv`` and ``summary.md`` (a Markdown table) into ``workdir``, atomically.

    The table has a column per ``by`` key (learning_rate as "lr", batch_size as "m"), one per metric
    ("mean ± std" over seeds, 3 significant digits; high_quality in %; "diverged" where every run
    diverged, "n/a" where no run has a finite value), then "seeds" and "diverged" (run counts).

    Args:
      workdir: the folder to write into.
      summary: rows from :func:`summarize`.
      metrics: the metrics to show; default every metric of ``summary``.
      by: the configuration keys of ``summary``.

    Returns:
      The Markdown text (header, separator, one line per configuration).
    """
    summary = list(summary)
    by = tuple(by)
    metrics = _summary_metrics(summary) if metrics is None else list(metrics)
    columns = [*by, "num_seeds", "num_diverged", *(f"{m}_{stat}" for m in metrics for stat in ("mean", "std"))]
    write_results_csv(os.path.join(workdir, "summary.csv"), summary, columns)
    text = _markdown_table(summary, metrics, by)
    io.write_text(os.path.join(workdir, "summary.md"), text)
    return text


# --------------------------------------------------------------------------------------
# Sweep plots: heatmaps, training curves, sample panels
# --------------------------------------------------------------------------------------


def _grid(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> tuple[list, list, dict[tuple, list[Mapping[str, Any]]]]:
    """The sorted distinct values of ``x`` and of ``y``, and the rows of each (x, y) cell."""
    cells = _group(rows, (x, y))
    xs = sorted({key[0] for key in cells}, key=_sort_key)
    ys = sorted({key[1] for key in cells}, key=_sort_key)
    return xs, ys, cells


def _save(fig, path: str | os.PathLike) -> None:
    io.save_figure(fig, path, dpi=100, bbox_inches="tight")


def _empty_panel(ax, title: str, text: str = "missing") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("whitesmoke")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="dimgray", fontsize=10)
    ax.set_title(title, fontsize=9)


def _heatmap_cells(summary: Sequence[Mapping[str, Any]], metric: str, x: str, y: str):
    """Grid values of a heatmap: ``xs``, ``ys``, means and stds ``[len(ys), len(xs)]``, and the text of
    each empty cell (``labels[i][j]``, "" where there is a value)."""
    xs, ys, cells = _grid(summary, x, y)
    means = np.full((len(ys), len(xs)), np.nan)
    stds = np.full((len(ys), len(xs)), np.nan)
    labels = [[""] * len(xs) for _ in ys]
    diverged = np.zeros((len(ys), len(xs)), np.int64)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            members = cells.get((xv, yv), [])
            if len(members) > 1:
                raise ValueError(
                    f"{len(members)} summary rows at {x}={xv!r}, {y}={yv!r}: a heatmap needs one per cell "
                    "(summarize over fewer keys, or plot a slice)"
                )
            row = members[0] if members else None
            mean = math.nan if row is None or row.get(f"{metric}_mean") is None else float(row[f"{metric}_mean"])
            std = math.nan if row is None or row.get(f"{metric}_std") is None else float(row[f"{metric}_std"])
            means[i, j], stds[i, j] = mean, std
            if not math.isfinite(mean):
                labels[i][j] = _missing_label(row)
            elif row is not None:
                diverged[i, j] = row.get("num_diverged") or 0
    return xs, ys, means, stds, labels, diverged


def plot_heatmap(
    summary: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | os.PathLike,
    *,
    x: str = "learning_rate",
    y: str = "batch_size",
    title: str | None = None,
    higher_is_better: bool | None = True,
) -> None:
    """Writes a PNG heatmap of ``<metric>_mean`` over ``x`` (columns) × ``y`` (rows), atomically.

    One column per distinct ``x`` value and one row per ``y`` value, evenly spaced (so a geometric
    grid of learning rates is on a log scale), labelled like ``1e-4``; the smallest ``y`` at the
    bottom. Each cell shows the mean, "± std" below it and, where some runs diverged, "k/n div.".
    A cell without a finite mean is grey and reads "diverged" (every run diverged) or "n/a".
    Brighter is better: viridis when ``higher_is_better`` (or None: no preference), reversed when not.

    Raises:
      ValueError: an empty summary, a summary without ``<metric>_mean``, or two rows in one cell.
    """
    summary = list(summary)
    if not any(f"{metric}_mean" in row for row in summary):
        raise ValueError(f"the summary has no {metric}_mean (metrics: {', '.join(_summary_metrics(summary)) or 'none'})")
    xs, ys, means, stds, labels, diverged = _heatmap_cells(summary, metric, x, y)
    scale = 100.0 if metric in _PERCENT_METRICS else 1.0
    plt = _pyplot()
    from matplotlib.colors import Normalize  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(max(4.5, 1.25 * len(xs) + 2.5), max(3.0, 0.85 * len(ys) + 1.7)))
    try:
        cmap = plt.colormaps["viridis_r" if higher_is_better is False else "viridis"].with_extremes(bad=_MISSING_COLOR)
        finite = means[np.isfinite(means)] * scale
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if low == high:
            low, high = low - 0.5 * max(abs(low), 1e-12), high + 0.5 * max(abs(high), 1e-12)
        norm = Normalize(low, high)
        image = ax.imshow(np.ma.masked_invalid(means * scale), cmap=cmap, norm=norm, origin="lower", aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                if labels[i][j]:
                    ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8, color="dimgray")
                    continue
                r, g, b, _ = cmap(norm(means[i, j] * scale))
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i + 0.12, _format_number(metric, means[i, j]), ha="center", va="center", fontsize=9, color=color)
                if math.isfinite(stds[i, j]):
                    std = 0.0 if abs(stds[i, j]) <= 1e-9 * abs(means[i, j]) else stds[i, j]
                    ax.text(j, i - 0.14, f"± {_format_number(metric, std, 2)}", ha="center", va="center",
                            fontsize=7, color=color)
                if diverged[i, j]:
                    ax.text(j, i - 0.34, f"{diverged[i, j]} div.", ha="center", va="center", fontsize=6, color=color)
        ax.set_xticks(range(len(xs)), [_format_setting(x, v) for v in xs])
        ax.set_yticks(range(len(ys)), [_format_setting(y, v) for v in ys])
        ax.set_xlabel(_AXIS_LABELS.get(x, x))
        ax.set_ylabel(_AXIS_LABELS.get(y, y))
        colorbar = fig.colorbar(image, ax=ax)
        preference = {True: " (higher is better)", False: " (lower is better)"}.get(higher_is_better, "")
        colorbar.set_label(f"{metric}{' (%)' if scale != 1.0 else ''}{preference}", fontsize=8)
        ax.set_title(title if title is not None else f"{metric}: mean ± std over seeds", fontsize=10)
        _save(fig, path)
    finally:
        plt.close(fig)


def _align(histories: Sequence[Sequence[Mapping[str, Any]]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps (the union over runs) and a ``[runs, steps]`` array of ``metric`` (NaN where not logged)."""
    steps = sorted({int(r["step"]) for history in histories for r in history if "step" in r})
    index = {step: k for k, step in enumerate(steps)}
    values = np.full((len(histories), len(steps)), np.nan)
    for n, history in enumerate(histories):
        for r in history:
            if "step" in r and r.get(metric) is not None:
                values[n, index[int(r["step"])]] = float(r[metric])
    return np.asarray(steps, np.int64), values


def _finite_mean(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite entries; NaN where there is none (no warning)."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=0)
    sums = np.where(finite, values, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_curves(
    workdir: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    metrics: Sequence[str] = ("d_loss", "g_loss", "d_real", "d_fake"),
) -> None:
    """Writes a PNG of training curves, one panel per (learning rate, m), atomically.

    Reads ``<workdir>/runs/<run_id>/metrics.jsonl`` of each run. Panels: columns by learning rate,
    rows by m (largest at the top, as in the heatmaps), titled "lr=1e-3, m=64". In each, every metric
    over steps: a thin line per run and a thick one for the mean over the runs logged at that step
    (runs of one panel are its seeds; options not in (lr, m) are pooled). A dotted red line marks the
    step where a run diverged. A panel whose runs have no metrics reads "missing".

    Raises:
      ValueError: ``rows`` is empty.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("plot_curves: no runs")
    lrs, ms, cells = _grid(rows, "learning_rate", "batch_size")
    colors = {metric: f"C{k}" for k, metric in enumerate(metrics)}
    plt = _pyplot()
    from matplotlib.lines import Line2D  # noqa: PLC0415

    fig, axes = plt.subplots(
        len(ms), len(lrs), figsize=(3.6 * len(lrs), 2.6 * len(ms) + 0.4), squeeze=False, layout="constrained"
    )
    try:
        any_diverged = False
        for i, m in enumerate(reversed(ms)):
            for j, lr in enumerate(lrs):
                ax = axes[i, j]
                label = _panel_label(lr, m)
                runs = sorted(cells.get((lr, m), []), key=lambda row: _sort_key(row.get("seed")))
                histories = [io.read_jsonl(os.path.join(workdir, "runs", str(row["run_id"]), "metrics.jsonl")) for row in runs]
                logged = [h for h in histories if h]
                if not logged:
                    _empty_panel(ax, f"{label}\nmissing")
                    continue
                for metric in metrics:
                    steps, values = _align(logged, metric)
                    if not np.isfinite(values).any():
                        continue
                    if len(logged) > 1:
                        for run_values in values:
                            ax.plot(steps, run_values, color=colors[metric], lw=0.6, alpha=0.35)
                    ax.plot(steps, _finite_mean(values), color=colors[metric], lw=1.6)
                for row in runs:
                    step = row.get("diverged_step")
                    if row.get("diverged") and step is not None and step >= 0:
                        ax.axvline(step, color="red", ls=":", lw=1.0)
                        any_diverged = True
                missing = len(runs) - len(logged)
                ax.set_title(label + (f" ({missing}/{len(runs)} runs missing)" if missing else ""), fontsize=9)
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=7)
                if i == len(ms) - 1:
                    ax.set_xlabel("step", fontsize=8)
                if j == 0:
                    ax.set_ylabel("loss / D output", fontsize=8)
        handles = [Line2D([], [], color=colors[m], lw=1.6, label=_CURVE_LABELS.get(m, m)) for m in metrics]
        if any_diverged:
            handles.append(Line2D([], [], color="red", ls=":", lw=1.0, label="diverged"))
        fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
        _save(fig, path)
    finally:
        plt.close(fig)


def _pick_run(runs: Sequence[Mapping[str, Any]], seed: int | None) -> Mapping[str, Any] | None:
    if seed is not None:
        return next((row for row in runs if row.get("seed") == seed), None)
    return min(runs, key=lambda row: _sort_key(row.get("seed")), default=None)


def _load_samples(path: str) -> np.ndarray | None:
    if not os.path.exists(path):
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _sample_title(label: str, row: Mapping[str, Any]) -> str:
    title = label if row.get("seed") is None else f"{label}, seed {row['seed']}"
    notes = []
    modes, quality = row.get("modes"), row.get("high_quality")
    if _is_number(modes) and math.isfinite(modes):
        notes.append(f"modes {float(modes):g}")
    if _is_number(quality) and math.isfinite(quality):
        notes.append(f"hq {100 * float(quality):.1f}%")
    if row.get("diverged"):
        step = row.get("diverged_step")
        notes.append("diverged" + (f" @ {step}" if step is not None and step >= 0 else ""))
    return title + ("\n" + " · ".join(notes) if notes else "")


def plot_sample_panels(
    workdir: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    dataset: Any = None,
    seed: int | None = None,
) -> None:
    """Writes a PNG of final samples, one panel per (learning rate, m), atomically.

    Each panel draws ``<workdir>/runs/<run_id>/samples.npy`` of the run with the smallest seed (or
    with ``seed``) through :func:`plot_samples` (``dataset`` gives the true modes or the pixel range),
    titled "lr=1e-3, m=64, seed 0" plus the run's modes and high-quality % when it has them. Layout as
    in :func:`plot_curves`. A run without (readable) samples, or a cell without such a run, gets an empty
    panel reading "missing".

    Raises:
      ValueError: ``rows`` is empty.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("plot_sample_panels: no runs")
    lrs, ms, cells = _grid(rows, "learning_rate", "batch_size")
    plt = _pyplot()
    from matplotlib.lines import Line2D  # noqa: PLC0415

    fig, axes = plt.subplots(len(ms), len(lrs), figsize=(3.2 * len(lrs), 3.4 * len(ms)), squeeze=False, layout="constrained")
    try:
        legend_labels: dict[str, None] = {}
        for i, m in enumerate(reversed(ms)):
            for j, lr in enumerate(lrs):
                ax = axes[i, j]
                label = _panel_label(lr, m)
                row = _pick_run(cells.get((lr, m), []), seed)
                if row is None:
                    _empty_panel(ax, f"{label}\nmissing (no run with seed {seed})")
                    continue
                samples = _load_samples(os.path.join(workdir, "runs", str(row["run_id"]), "samples.npy"))
                if samples is None:
                    _empty_panel(ax, _sample_title(label, row).split("\n")[0] + "\nmissing")
                    continue
                plot_samples(ax, samples, dataset=dataset, title=_sample_title(label, row))
                ax.tick_params(labelsize=7)
                if samples.ndim == 2:
                    legend_labels.update(dict.fromkeys(ax.get_legend_handles_labels()[1]))
        # Proxies: the scatter's own markers are too small (generated) or too big (modes) for a legend.
        proxies = {
            "generated": Line2D([], [], ls="", marker="o", ms=4, alpha=0.6, color="tab:blue", label="generated"),
            "true modes": Line2D([], [], ls="", marker="x", ms=6, color="tab:red", label="true modes"),
        }
        handles = [proxies[label] for label in legend_labels if label in proxies]
        if handles:
            fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
        _save(fig, path)
    finally:
        plt.close(fig)
