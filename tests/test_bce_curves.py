"""Smoke tests of the loss experiments: experiments.bce_curves, experiments.benchmark_losses."""

import re

import matplotlib.image
import numpy as np
import pytest

from experiments import bce_curves, benchmark_losses

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_bce_curves_writes_png_and_prints_worked_example(tmp_path, capsys):
    out = tmp_path / "curves"
    path = bce_curves.main(["--out", str(out)])
    printed = capsys.readouterr().out

    png = out / "bce_curves.png"
    assert path == str(png)
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(np.std(image)) > 0.01  # not a blank canvas
    assert [p.name for p in out.iterdir()] == ["bce_curves.png"]  # no temporary file left behind

    # The table's rows (i, h, y, loss) and the printed mean J.
    rows = [(float(h), int(y), float(loss)) for h, y, loss in
            re.findall(r"^\s*\d+\s+([0-9.]+)\s+([01])\s+([0-9.]+)", printed, flags=re.M)]
    assert len(rows) == 5, printed
    assert sum(y for _, y, _ in rows) == 1  # one label 1, four labels 0
    (cost,) = [float(c) for c in re.findall(r"^mean = J = ([0-9.]+)$", printed, flags=re.M)]
    assert cost == pytest.approx(np.mean([loss for _, _, loss in rows]), abs=2e-6)
    for h, y, loss in rows:  # each row is its own label's term
        assert loss == pytest.approx(-np.log(h) if y == 1 else -np.log1p(-h), abs=2e-6)


def test_bce_curves_loss_curves():
    h, loss_y1, loss_y0 = bce_curves.loss_curves(num=101)
    assert np.all((h > 0) & (h < 1))
    np.testing.assert_allclose(loss_y1, -np.log(h), rtol=1e-5)
    np.testing.assert_allclose(loss_y0, -np.log1p(-h), rtol=1e-5, atol=1e-7)


def test_benchmark_losses_smoke(capsys):
    argv = ["--n", "1000", "--repeats", "2", "--warmup", "1", "--no-torch"]
    variants = benchmark_losses.main(argv)
    printed = capsys.readouterr().out
    assert all(len(v.times) == 2 for v in variants)
    ratios = re.findall(r"^ratio (\S+) (fwd\+bwd|fwd): .* = ([0-9.]+)x", printed, flags=re.M)
    assert {(name, mode) for name, mode, _ in ratios} == {
        ("bce_with_logits", "fwd"), ("bce_with_logits", "fwd+bwd"), ("bce", "fwd"),
        ("bce", "fwd+bwd"),
    }
    assert all(float(r) > 0 for _, _, r in ratios)
    assert "x.sum() (bandwidth reference)" in printed
    assert "load average before:" in printed and "load average after:" in printed
