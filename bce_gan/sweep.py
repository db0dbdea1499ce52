"""Sweeps: a grid of options (learning rate × batch size m × seed × ...) expanded into runs, grouped into
populations, trained, resumed, and aggregated into tables and plots.

Workdir layout::

    sweep.json                     the sweep's definition (base options and grid); a rerun must match
    runs/<run_id>/                 config.json, metrics.jsonl, samples.npy, samples.png, final.json
    populations/<id>/checkpoints/  the population's orbax checkpoints
    results.csv                    one row per run: swept values, seed, final metrics, diverged, wall time
    summary.csv, summary.md        per lr × m: mean ± std over seeds
    heatmap_<metric>.png, curves.png, samples.png

Rerunning the same sweep on the same workdir skips finished runs (those with ``final.json``) and resumes
the others from their population's last checkpoint. Every file is written atomically.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import itertools
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from bce_gan import distributed, io, population, train
from bce_gan.train import TrainConfig

__all__ = ["Run", "SweepMismatch", "expand_grid", "grid_keys", "plan_sweep", "group_populations", "run_sweep", "HEATMAP_METRICS"]

# Short names in run ids.
_ABBREVIATIONS = {"learning_rate": "lr", "batch_size": "m", "seed": "seed", "adam_b1": "b1", "adam_b2": "b2"}
# Metrics of the summary table, in this order (those the runs have).
SUMMARY_METRICS = ("modes", "high_quality", "reverse_kl", "fd", "fd_baseline", "kid", "class_kl", "classes_hit",
                   "d_loss", "g_loss", "d_real", "d_fake")
# Metrics with a heatmap, and whether higher is better.
HEATMAP_METRICS = {"modes": True, "high_quality": True, "reverse_kl": False, "fd": False, "kid": False,
                   "class_kl": False, "d_loss": None, "g_loss": None}


class SweepMismatch(ValueError):
    """The workdir holds a different sweep."""


@dataclasses.dataclass(frozen=True)
class Run:
    run_id: str
    config: TrainConfig
    swept: Mapping[str, Any]  # the grid values of this run


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(map(_format_value, value))
    return str(value)


def make_run_id(swept: Mapping[str, Any]) -> str:
    def short(key: str) -> str:
        return _ABBREVIATIONS.get(key, key.rpartition(".")[2])

    return "_".join(f"{short(k)}={_format_value(v)}" for k, v in swept.items())


def _with_swept(base: Mapping[str, Any], swept: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the swept values set; ``"field.key"`` sets one key of a dict option."""
    values = dict(base)
    for key, value in swept.items():
        field, dot, sub = key.partition(".")
        if dot:
            values[field] = {**values.get(field, {}), sub: value}
        else:
            values[key] = value
    return values


def grid_keys(grid: Mapping[str, Any]) -> list[str]:
    """The option names of a grid: ``"a,b"`` (options swept together) counts as ``a`` and ``b``."""
    return [name.strip() for key in grid for name in key.split(",")]


def expand_grid(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cartesian product of the grid's lists (a scalar is a list of one), in the grid's key order.

    A key naming several options, ``"model_options.pack,batch_size": [(1, 100), (2, 200)]``, sweeps
    them together: each value is a tuple with one entry per option (PacGAN keeps 100 packs per step).
    """
    axes = []
    for key, options in grid.items():
        names = [name.strip() for name in key.split(",")]
        options = list(options) if isinstance(options, (list, tuple)) else [options]
        if not options:
            raise ValueError(f"the sweep over {key} has no values")
        if len(set(map(repr, options))) != len(options):
            raise ValueError(f"the sweep over {key} repeats a value: {options}")
        if len(names) > 1:
            bad = [v for v in options if not isinstance(v, (list, tuple)) or len(v) != len(names)]
            if bad:
                raise ValueError(f"the sweep over {key} needs {len(names)} values per entry (one per option); got {bad[0]!r}")
            axes.append([dict(zip(names, value, strict=True)) for value in options])
        else:
            axes.append([{names[0]: value} for value in options])
    if len(set(grid_keys(grid))) != len(grid_keys(grid)):
        raise ValueError(f"the sweep names an option twice: {grid_keys(grid)}")
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def plan_sweep(base: Mapping[str, Any], grid: Mapping[str, Any], *, dataset_size: int | None = None) -> list[Run]:
    """Every run of the sweep, validated (so bad values fail before anything compiles).

    Args:
      base: options shared by all runs (a preset's ``get_config()`` with overrides).
      grid: option -> list of values. A nested option is named with a dot:
        ``"model_options.pack": [1, 2, 4]``; options swept together share a key, ``"a,b": [(a1, b1), ...]``.
      dataset_size: if given, an m larger than the dataset is refused.
    """
    runs = []
    for swept in expand_grid(grid):
        config = TrainConfig.from_dict(_with_swept(base, swept)).validate()
        if dataset_size is not None and config.batch_size > dataset_size:
            raise ValueError(f"batch_size={config.batch_size} is larger than the dataset ({dataset_size} examples)")
        runs.append(Run(make_run_id(swept), config, swept))
    return runs


def group_populations(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by shared shape (one compiled program each), ordered by batch size m.

    The population id reads ``m=<batch size>`` plus a short hash of everything else it fixes.
    """
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(population.population_key(run.config), []).append(run)
    named = {}
    for key, members in sorted(groups.items(), key=lambda kv: (kv[1][0].config.batch_size, kv[0])):
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        named[f"m={members[0].config.batch_size}_{digest}"] = members
    return named


def _check_definition(workdir: str, definition: dict, overwrite: bool, *, write: bool = True) -> None:
    """Refuses a workdir holding another sweep (or deletes it, with ``overwrite``); records this one.
    ``write=False`` (processes other than 0 of a multi-process sweep) only checks."""
    path = os.path.join(workdir, "sweep.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if io.json_key(old) != io.json_key(json.loads(json.dumps(definition))):
            if not overwrite:
                raise SweepMismatch(
                    f"{workdir} holds a different sweep (see its sweep.json); use another --workdir, "
                    "or --overwrite to delete it and start again"
                )
            if write:
                shutil.rmtree(workdir)
    if write:
        os.makedirs(workdir, exist_ok=True)
        io.write_json(path, definition)


def result_row(run: Run, population_id: str, final: Mapping[str, Any]) -> dict[str, Any]:
    row = {"run_id": run.run_id, "population": population_id}
    row.update({k.rpartition(".")[2]: v for k, v in run.swept.items() if k not in ("model_options", "dataset_options")})
    row.setdefault("learning_rate", run.config.learning_rate)
    row.setdefault("batch_size", run.config.batch_size)
    row.setdefault("seed", run.config.seed)
    row.update({k: v for k, v in final.items() if k != "executor"})
    return row


def run_sweep(
    base: Mapping[str, Any],
    grid: Mapping[str, Any],
    workdir: str,
    *,
    overwrite: bool = False,
    executor: str = "auto",
    parallel: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Runs (or resumes) the sweep; writes results, summary and plots; returns the result rows.

    Args:
      base: options shared by every run.
      grid: option -> list of values to sweep.
      workdir: the sweep's folder (see the module docstring).
      overwrite: delete a different sweep found in ``workdir`` instead of refusing.
      executor: how a population's members run (``population.EXECUTORS``).
      parallel: populations trained at the same time (default: :func:`default_parallelism`).
      progress: show tqdm bars.
      log: where the summary table is printed.
    """
    from bce_gan import report  # noqa: PLC0415

    runs = plan_sweep(base, grid)
    dataset = train.load_data(runs[0].config)
    runs = plan_sweep(base, grid, dataset_size=dataset.x.shape[0])
    groups = group_populations(runs)
    primary = distributed.is_primary()  # in a multi-process sweep process 0 writes the files
    progress = progress and primary
    definition = {"base": dict(runs[0].config.to_dict(), **{k: None for k in grid_keys(grid)}), "grid": grid}
    _check_definition(workdir, definition, overwrite, write=primary)
    distributed.barrier("sweep definition checked")

    def run_dirs(members):
        return [os.path.join(workdir, "runs", r.run_id) for r in members]

    finals: dict[str, list[dict]] = {}
    for pop_id, members in groups.items():  # finished populations are read, not trained
        paths = [os.path.join(d, "final.json") for d in run_dirs(members)]
        if all(os.path.exists(p) for p in paths):
            finals[pop_id] = [_read_json(p) for p in paths]
    todo = [pop_id for pop_id in groups if pop_id not in finals]
    # Largest populations first: with several workers the sweep ends when the longest queue does.
    todo.sort(key=lambda p: -len(groups[p]) * groups[p][0].config.batch_size * groups[p][0].config.num_steps)
    workers = max(1, min(parallel or default_parallelism(), len(todo) or 1))
    if jax.process_count() > 1:
        workers = 1  # every process must launch the same programs in the same order
    for pop_id in todo:
        members = groups[pop_id]
        mesh = population.population_mesh(len(members), members[0].config.batch_size, members[0].config.mesh,
                                           population.choose_executor(None, executor))
        if mesh is not None:  # (one device: nothing to report)
            log(f"population {pop_id}: {len(members)} runs on mesh {train.describe_mesh(mesh)}")

    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(runs), initial=sum(len(f) for f in finals.values()), desc="sweep", unit="run",
                   position=0, dynamic_ncols=True)

    def train_one(slot: int, pop_id: str) -> list[dict]:
        members = groups[pop_id]
        member_bar = None
        if progress:
            from tqdm import tqdm  # noqa: PLC0415

            member_bar = tqdm(total=members[0].config.num_steps, desc=f"  {pop_id} ({len(members)} runs)",
                              unit="step", position=1 + slot, leave=False, dynamic_ncols=True)
        try:
            return population.train_population(
                [r.config for r in members], run_dirs(members), os.path.join(workdir, "populations", pop_id),
                dataset=dataset, executor=executor, on_steps=member_bar.update if member_bar else None,
            )
        finally:
            if member_bar is not None:
                member_bar.close()

    # Populations train in threads (jax releases the GIL while computing): on a CPU one small
    # program keeps one core busy, so two at a time use both cores of a 2-core machine.
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            slots = itertools.cycle(range(workers))
            futures = {pool.submit(train_one, next(slots), pop_id): pop_id for pop_id in todo}
            try:
                for future in concurrent.futures.as_completed(futures):
                    finals[futures[future]] = future.result()
                    if bar is not None:
                        bar.update(len(groups[futures[future]]))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    finally:
        if bar is not None:
            bar.close()
    rows = [result_row(r, pop_id, f) for pop_id, members in groups.items()
            for r, f in zip(members, finals[pop_id], strict=True)]

    order = {r.run_id: i for i, r in enumerate(runs)}
    rows.sort(key=lambda row: order[row["run_id"]])
    if not primary:
        return rows
    report.write_results_csv(os.path.join(workdir, "results.csv"), rows)
    metrics = [m for m in SUMMARY_METRICS if rows and m in rows[0]]
    by = tuple(k.rpartition(".")[2] for k in grid_keys(grid) if k != "seed") or ("learning_rate", "batch_size")
    summary = report.summarize(rows, by=by, metrics=metrics)
    table = report.write_summary(workdir, summary, metrics=metrics, by=by)
    for metric, higher in HEATMAP_METRICS.items():
        if rows and metric in rows[0] and set(by) == {"learning_rate", "batch_size"}:
            report.plot_heatmap(summary, metric, os.path.join(workdir, f"heatmap_{metric}.png"),
                                higher_is_better=higher)
    report.plot_curves(workdir, rows, os.path.join(workdir, "curves.png"))
    report.plot_sample_panels(workdir, rows, os.path.join(workdir, "samples.png"), dataset=dataset)
    log(table)
    return rows


def default_parallelism() -> int:
    """Populations to train at once: one per CPU core on a CPU backend, else one."""
    if jax.default_backend() != "cpu":
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
