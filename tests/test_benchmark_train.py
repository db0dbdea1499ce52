"""Smoke test of experiments/benchmark_train.py: one tiny run without PyTorch, the FLOP count, the torch loops."""

import sys

import pytest

from experiments import benchmark_train as bench


def test_runs_without_torch_and_prints_the_table(capsys):
    results = bench.main(
        ["--batch-sizes", "32", "--no-toy", "--no-torch", "--repeats", "2", "--seconds", "0.05",
         "--call-seconds", "0.01", "--peak-size", "128", "--num-examples", "256"]
    )
    out = capsys.readouterr().out
    assert "torch columns skipped" in out
    assert "load average" in out
    assert "| m | JAX it/s | course it/s | tuned it/s | JAX / course | JAX / tuned | JAX % of peak |" in out
    assert "\n| 32 | " in out
    assert results["32"]["JAX"] > 0
    assert 0 < results["32"]["fraction_of_peak"] < 10  # a fraction, not a percentage; noisy on a tiny peak
    assert "course" not in results["32"]


def test_import_torch_reports_why_when_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    torch, why = bench.import_torch()
    assert torch is None
    assert "torch columns skipped" in why


def test_flop_count_by_hand():
    model = bench.COURSE_MLP
    per_example = 2 * (
        1_499_136  # G forward, no gradient (D step)
        + (2 * 64 * 128 + 3 * (1_499_136 - 64 * 128))  # G forward and backward (G step)
        + 2 * (2 * 784 * 512 + 3 * (565_376 - 784 * 512))  # D on real and fake, weights and inputs
        + 2 * 565_376  # D forward and input gradient (G step)
    )
    assert bench.matmul_flops_per_iteration(model, 1) == per_example == 19_417_088
    assert bench.matmul_flops_per_iteration(model, 512) == 512 * per_example
    assert bench.TOY_2D.d_layers() == [(2, 1000), (200, 1000), (200, 1000), (200, 1)]
    assert bench.TOY_2D.g_layers() == [(2, 400), (400, 400), (400, 400), (400, 400), (400, 2)]


@pytest.mark.parametrize("model", [bench.COURSE_MLP, bench.TOY_2D], ids=["mlp", "toy"])
def test_torch_loops_train(model):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny shapes; and 2 OpenMP threads crawl on a loaded 2-core machine
    data = torch.rand(64, model.data_dim)
    course = bench.torch_course_loop(torch, model, 8, data)
    tuned, adam_kind = bench.torch_tuned_loop(torch, model, 8, data)
    assert adam_kind in ("fused", "foreach")
    for run in (course, tuned):
        gen, disc = run.models
        before = [p.detach().clone() for p in (*gen.parameters(), *disc.parameters())]
        run(2)
        after = list((*gen.parameters(), *disc.parameters()))
        assert all(p.requires_grad for p in after)  # the tuned loop unfreezes D
        assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        assert torch.isfinite(disc(gen(torch.randn(8, model.z_dim)))).all()
