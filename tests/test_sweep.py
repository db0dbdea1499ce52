"""Sweeps: grid expansion and grouping, the CLI's checks, result files, resume after SIGKILL."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bce_gan import report, sweep
from experiments import sweep as sweep_cli

SMALL_TOY = {"hidden": (16, 16), "batchnorm": False, "maxout_pieces": 1, "init_std": None}
BASE = dict(
    dataset="ring8",
    dataset_options={"num_samples": 4000},
    model="toy",
    model_options=SMALL_TOY,
    num_steps=40,
    log_every=10,
    checkpoint_every=20,
    num_samples=300,
    tensorboard=False,
)
GRID = {"learning_rate": [1e-3, 3e-3], "batch_size": [16, 32], "seed": [0, 1]}


def test_grid_expansion_and_grouping():
    runs = sweep.plan_sweep(BASE, GRID)
    assert len(runs) == 8
    assert runs[0].run_id == "lr=0.001_m=16_seed=0"
    assert len({r.run_id for r in runs}) == 8
    groups = sweep.group_populations(runs)
    assert [len(members) for members in groups.values()] == [4, 4]
    assert [name.split("_")[0] for name in groups] == ["m=16", "m=32"]
    for members in groups.values():
        assert len({r.config.batch_size for r in members}) == 1
    # A swept option that changes shapes splits populations; a traced one does not.
    assert len(sweep.group_populations(sweep.plan_sweep(BASE, {**GRID, "n_disc": [1, 2]}))) == 4
    assert len(sweep.group_populations(sweep.plan_sweep(BASE, {**GRID, "adam_b1": [0.5, 0.9]}))) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-sizes", "0"], "batch_size"),
        (["--learning-rates=-1e-3"], "learning_rate"),
        (["--learning-rates", "1e-3,abc"], "learning-rates"),
        (["--batch-sizes", "32,32"], "repeats"),
        (["--seeds", "0"], "seeds"),
        (["--batch-sizes", "200000"], "larger than the dataset"),
        (["--preset", "nope"], "unknown preset"),
        (["--loss", "hinge"], "loss"),
    ],
)
def test_cli_rejects_bad_values_before_compiling(argv, message, capsys, tmp_path):
    started = time.perf_counter()
    code = sweep_cli.main([*argv, "--workdir", str(tmp_path / "w"), "--no-progress"])
    assert code != 0
    assert message in capsys.readouterr().err
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "w" / "results.csv").exists()


def _rows_without_times(path):
    rows = report.read_results_csv(path)
    for row in rows:
        row.pop("wall_time_s")
    return rows


def test_sweep_writes_every_file_and_skips_finished_runs(tmp_path):
    rows = sweep.run_sweep(BASE, GRID, str(tmp_path), progress=False, log=lambda _: None)
    assert len(rows) == 8
    for name in ("results.csv", "summary.csv", "summary.md", "sweep.json"):
        assert (tmp_path / name).exists(), name
    for name in ("curves.png", "samples.png", "heatmap_modes.png", "heatmap_high_quality.png", "heatmap_reverse_kl.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert {"learning_rate", "batch_size", "seed", "modes", "high_quality", "reverse_kl", "diverged",
            "diverged_step", "wall_time_s"} <= set(table[0])
    summary_md = (tmp_path / "summary.md").read_text()
    assert summary_md.count("\n| 1e-3 |") + summary_md.count("\n| 3e-3 |") == 4
    for run in rows:
        run_dir = tmp_path / "runs" / run["run_id"]
        for name in ("config.json", "metrics.jsonl", "samples.npy", "final.json"):
            assert (run_dir / name).exists()
    before = _rows_without_times(tmp_path / "results.csv")
    started = time.perf_counter()
    sweep.run_sweep(BASE, GRID, str(tmp_path), progress=False, log=lambda _: None)  # all finished: nothing trains
    assert time.perf_counter() - started < 30
    assert _rows_without_times(tmp_path / "results.csv") == before


def test_a_different_sweep_is_refused_unless_overwrite(tmp_path):
    small = {"learning_rate": [1e-3], "batch_size": [16], "seed": [0]}
    sweep.run_sweep(BASE, small, str(tmp_path), progress=False, log=lambda _: None)
    other = {**small, "learning_rate": [3e-3]}
    with pytest.raises(sweep.SweepMismatch, match="overwrite"):
        sweep.run_sweep(BASE, other, str(tmp_path), progress=False, log=lambda _: None)
    rows = sweep.run_sweep(BASE, other, str(tmp_path), overwrite=True, progress=False, log=lambda _: None)
    assert [r["learning_rate"] for r in rows] == [3e-3]
    assert not (tmp_path / "runs" / "lr=0.001_m=16_seed=0").exists()


def test_divergence_is_recorded_and_isolated(tmp_path):
    grid = {"learning_rate": [1e-3, 1e30], "batch_size": [16], "seed": [0]}
    rows = {r["learning_rate"]: r for r in sweep.run_sweep(BASE, grid, str(tmp_path), progress=False, log=lambda _: None)}
    assert rows[1e30]["diverged"] and 0 <= rows[1e30]["diverged_step"] < BASE["num_steps"]
    assert not rows[1e-3]["diverged"] and rows[1e-3]["diverged_step"] == -1


_KILL_GRID = ["--learning-rates", "1e-3,3e-3", "--batch-sizes", "16,32", "--seeds", "1", "--num-steps", "200",
              "--log-every", "50", "--checkpoint-every", "100", "--num-samples", "300",
              "--dataset-option", "num_samples=4000", "--model-option", "hidden=(16,16)", "--no-progress"]


def _sweep_cmd(workdir):
    return [sys.executable, "-m", "experiments.sweep", *_KILL_GRID, "--workdir", str(workdir)]


def _no_partial_files(workdir):
    for folder, _, files in os.walk(workdir):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".json") and "checkpoints" not in folder:
                with open(path) as f:
                    json.load(f)
            elif name.endswith(".jsonl"):
                with open(path) as f:
                    for line in f:
                        json.loads(line)


def test_kill_and_resume_gives_the_uninterrupted_results(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(_sweep_cmd(tmp_path / "straight"), check=True, cwd=root, env=env, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_sweep_cmd(killed), cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill once the first population has a checkpoint: mid-way through the sweep.
    deadline = time.time() + 300
    checkpoints = killed / "populations"
    while time.time() < deadline and proc.poll() is None:
        if checkpoints.exists() and any(
            name.isdigit() for pop in checkpoints.iterdir() for name in os.listdir(pop / "checkpoints")
            if (pop / "checkpoints").exists()
        ):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.csv").exists()
    _no_partial_files(killed)

    subprocess.run(_sweep_cmd(killed), check=True, cwd=root, env=env, capture_output=True, timeout=600)
    assert _rows_without_times(killed / "results.csv") == _rows_without_times(tmp_path / "straight" / "results.csv")


def test_nested_options_can_be_swept():
    runs = sweep.plan_sweep({**BASE, "model_options": {**SMALL_TOY, "pack": 1}}, {"model_options.pack": [1, 2], "seed": [0]})
    assert [r.run_id for r in runs] == ["pack=1_seed=0", "pack=2_seed=0"]
    assert [r.config.model_options["pack"] for r in runs] == [1, 2]
    assert runs[1].config.model_options["hidden"] == SMALL_TOY["hidden"]
    assert len(sweep.group_populations(runs)) == 2  # packing changes D's input shape


def test_options_can_be_swept_together():
    grid = {"model_options.pack,batch_size": [(1, 16), (2, 32)], "seed": [0, 1]}
    runs = sweep.plan_sweep({**BASE, "model_options": {**SMALL_TOY, "pack": 1}}, grid)
    assert [r.run_id for r in runs] == ["pack=1_m=16_seed=0", "pack=1_m=16_seed=1", "pack=2_m=32_seed=0", "pack=2_m=32_seed=1"]
    assert [(r.config.model_options["pack"], r.config.batch_size) for r in runs] == [(1, 16), (1, 16), (2, 32), (2, 32)]
    assert sweep.grid_keys(grid) == ["model_options.pack", "batch_size", "seed"]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"model_options.pack,batch_size": [(1, 16), 2]}, "2 values per entry"),
        ({"model_options.pack,batch_size": [(1, 16, 3)]}, "2 values per entry"),
        ({"batch_size,seed": [(16, 0)], "seed": [1]}, "names an option twice"),
    ],
)
def test_bad_joint_sweeps_are_refused(grid, message):
    with pytest.raises(ValueError, match=message):
        sweep.expand_grid(grid)
