"""Multi-process runs (``jax.distributed``): two processes on localhost, two CPU devices each, against one
process with four devices, through the command-line tools (``--coordinator-address`` & co.)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from bce_gan import distributed, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Small enough for CI: the ring8 preset with 16-unit layers, a few steps, a small training set.
COMMON = ["--num-steps", "6", "--log-every", "3", "--checkpoint-every", "3", "--num-samples", "256",
          "--tensorboard", "false", "--dataset-option", "num_samples=2000", "--model-option", "hidden=(16,16)"]
TRAIN = ["-m", "experiments.train", "--batch-size", "64", *COMMON]
SWEEP = ["-m", "experiments.sweep", "--learning-rates", "1e-3,3e-3", "--batch-sizes", "32", "--seeds", "2",
         "--no-progress", "--mesh", "members=2,data=2", *COMMON]


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BCE_GAN_")}
    return dict(env, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(args: list[str]) -> None:
    """``python args`` as processes 0 and 1 of one run (2 CPU devices each), via the flags."""
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen([sys.executable, *args, "--coordinator-address", address, "--num-processes", "2",
                          "--process-id", str(i)], cwd=ROOT, env=_env(2), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=300))
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]


def _run_one_process(args: list[str]) -> None:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(4), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _rows(path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in report.read_results_csv(path)]


def _assert_close(a: dict, b: dict) -> None:
    # Not bitwise: the all-reduce of the means over m adds partial sums in another order across processes.
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
        else:
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess_train")
    _run_two_processes([*TRAIN, "--workdir", str(root / "two"), "--num-steps", "3"])  # then resumed to 6
    _run_two_processes([*TRAIN, "--workdir", str(root / "two")])
    _run_one_process([*TRAIN, "--workdir", str(root / "one"), "--mesh", "data=4"])
    return root


def test_two_processes_equal_one_process(single_run):
    two, one = single_run / "two", single_run / "one"
    final_two, final_one = (json.loads((d / "final.json").read_text()) for d in (two, one))
    assert final_two["step"] == 6
    _assert_close(final_two, final_one)
    rows_two, rows_one = ([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (two, one))
    assert [r["step"] for r in rows_two] == [3, 6]  # the resumed run kept the first half's row
    for a, b in zip(rows_two, rows_one, strict=True):
        _assert_close(a, b)
    samples_two, samples_one = np.load(two / "samples.npy"), np.load(one / "samples.npy")
    print(f"2 processes vs 1: max sample difference {np.max(np.abs(samples_two - samples_one)):.1e}")  # pytest -s
    np.testing.assert_allclose(samples_two, samples_one, atol=1e-5)


def test_each_process_writes_its_own_log(single_run):
    logs = sorted(p.name for p in (single_run / "two" / "logs").iterdir())
    assert logs == ["process_0.jsonl", "process_1.jsonl"]
    rows = [json.loads(line) for line in (single_run / "two" / "logs" / "process_1.jsonl").read_text().splitlines()]
    start = rows[0]
    assert start["event"] == "start" and start["process"] == 1 and start["processes"] == 2
    assert len(start["local_devices"]) == 2 and start["mesh"] == "data=4 (4 cpu devices)"
    assert [r["step"] for r in rows if "step" in r] == [3, 6]
    assert not (single_run / "one" / "logs").exists()  # a single process keeps no per-process log


def test_two_process_sweep_equals_one_process(tmp_path):
    _run_two_processes([*SWEEP, "--workdir", str(tmp_path / "two")])
    _run_one_process([*SWEEP, "--workdir", str(tmp_path / "one")])
    rows_two, rows_one = _rows(tmp_path / "two" / "results.csv"), _rows(tmp_path / "one" / "results.csv")
    assert len(rows_two) == 4
    assert {r["mesh"] for r in rows_two} == {"members=2,data=2 (4 cpu devices)"}
    for a, b in zip(rows_two, rows_one, strict=True):
        _assert_close(a, b)


def test_initialize_settings(monkeypatch):
    for name in distributed.ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False  # nothing asked: a single process
    with pytest.raises(ValueError, match="missing num_processes .*BCE_GAN_NUM_PROCESSES.*process_id"):
        distributed.initialize("127.0.0.1:1234")
    with pytest.raises(ValueError, match=r"process_id=2 must be an integer in \[0, num_processes=2\)"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match="HOST:PORT"):
        distributed.initialize("localhost", 2, 0)
    monkeypatch.setenv("BCE_GAN_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="BCE_GAN_NUM_PROCESSES='two' is not an integer"):
        distributed.initialize("127.0.0.1:1234", process_id=0)
