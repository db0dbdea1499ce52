"""Tests of bce_gan.report: results.csv, summaries over seeds, and the sweep plots.

Everything runs on small fake sweeps written into tmp_path (no training): the rows, per-run
``metrics.jsonl`` and ``samples.npy`` laid out as ``bce_gan.sweep`` writes them.
"""

import ast
import math
import os
import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure  # noqa: E402
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bce_gan import io, report  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = math.nan
METRICS = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "modes", "high_quality", "reverse_kl")
MODES = [[2 * math.cos(a), 2 * math.sin(a)] for a in np.arange(8) * 2 * math.pi / 8]
MIXTURE = types.SimpleNamespace(info={"modes": MODES, "std": 0.05}, value_range=None)

# (learning_rate, batch_size) -> per seed: (d_loss, modes, high_quality, diverged). The config
# (1e-3, 64) is absent, (3e-4, 32) has one seed, (3e-4, 64) diverged in every seed.
CONFIGS = {
    (1e-4, 32): [(0.5, 8, 0.9, False), (0.7, 7, 0.8, False), (0.9, 6, 0.4, False)],
    (1e-4, 64): [(0.6, 8, 0.95, False), (NAN, NAN, NAN, True)],
    (3e-4, 32): [(0.8, 5, 0.5, False)],
    (3e-4, 64): [(NAN, NAN, NAN, True), (NAN, NAN, NAN, True)],
    (1e-3, 32): [(1.1, 3, 0.2, False), (1.3, 2, 0.1, False), (1.2, 4, 0.3, False)],
}


def make_rows(configs=CONFIGS):
    rows = []
    for (lr, m), seeds in configs.items():
        for seed, (d_loss, modes, quality, diverged) in enumerate(seeds):
            rows.append({
                "run_id": f"lr={lr:g}_m={m}_seed={seed}",
                "population": f"m={m}_0123abcd",
                "learning_rate": lr,
                "batch_size": m,
                "seed": seed,
                "step": 200,
                "d_loss": d_loss,
                "g_loss": NAN if diverged else 0.7 + 0.1 * seed,
                "d_real": NAN if diverged else 0.6,
                "d_fake": NAN if diverged else 0.4 - 0.05 * seed,
                "d_grad_norm": NAN if diverged else 1.0 + seed,
                "g_grad_norm": NAN if diverged else 2.0,
                "modes": modes,
                "high_quality": quality,
                "reverse_kl": NAN if diverged else 0.1 * (8 - modes),
                "no_high_quality": 0,
                "diverged": diverged,
                "diverged_step": 120 if diverged else -1,
                "wall_time_s": 1.5,
            })  # fmt: skip
    return rows


def make_sweep(workdir, rows, *, image_shape=None, num_steps=100):
    """Writes runs/<run_id>/metrics.jsonl and samples.npy for ``rows`` (2-D points or images)."""
    rng = np.random.default_rng(0)
    for row in rows:
        run_dir = os.path.join(workdir, "runs", row["run_id"])
        last = row["diverged_step"] if row["diverged"] else num_steps
        history = [
            {"step": step, "d_loss": 1.3 - step / 1000, "g_loss": 0.7 + step / 500, "d_real": 0.5 + step / 1000,
             "d_fake": 0.5 - step / 1000 + 0.01 * row["seed"], "d_grad_norm": 1.0, "g_grad_norm": 2.0}
            for step in range(10, last + 1, 10)
        ]  # fmt: skip
        io.write_jsonl(os.path.join(run_dir, "metrics.jsonl"), history)
        if image_shape is None:
            centers = np.asarray(MODES)[rng.integers(0, 8, 200)]
            samples = centers + 0.05 * rng.normal(size=(200, 2))
        else:
            samples = rng.uniform(-1, 1, size=(16, *image_shape)).astype(np.float32)
        with io.atomic_path(os.path.join(run_dir, "samples.npy")) as tmp, open(tmp, "wb") as f:
            np.save(f, samples)


@pytest.fixture
def sweep(tmp_path):
    rows = make_rows()
    make_sweep(tmp_path, rows)
    return tmp_path, rows


def assert_png(path, min_height=150, min_width=150):
    assert os.path.exists(path), path
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_height and image.shape[1] >= min_width, image.shape
    assert image[..., :3].std() > 0.01  # not a blank page
    assert plt.get_fignums() == []  # the figure was closed
    return image


def same(a, b):
    """Equal values of equal types, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_rows_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w), (sorted(g), sorted(w))
        for key in w:
            assert same(g[key], w[key]), (key, g[key], w[key])


# --------------------------------------------------------------------------------------
# summarize
# --------------------------------------------------------------------------------------


def test_summarize_matches_numpy_mean_and_std_over_seeds():
    rows = make_rows()
    summary = report.summarize(rows)
    assert [(s["learning_rate"], s["batch_size"]) for s in summary] == sorted(CONFIGS)
    for s in summary:
        group = [r for r in rows if (r["learning_rate"], r["batch_size"]) == (s["learning_rate"], s["batch_size"])]
        assert s["num_seeds"] == len(group)
        assert s["num_diverged"] == sum(r["diverged"] for r in group)
        for metric in METRICS:
            values = np.array([r[metric] for r in group], np.float64)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                assert math.isnan(s[f"{metric}_mean"]) and math.isnan(s[f"{metric}_std"])
                continue
            np.testing.assert_allclose(s[f"{metric}_mean"], np.mean(finite), rtol=1e-12, err_msg=metric)
            want_std = np.std(finite, ddof=1) if finite.size > 1 else 0.0
            np.testing.assert_allclose(s[f"{metric}_std"], want_std, rtol=1e-12, atol=1e-15, err_msg=metric)


def test_summarize_hand_computed_cases():
    by_config = {(s["learning_rate"], s["batch_size"]): s for s in report.summarize(make_rows())}
    full = by_config[(1e-4, 32)]  # three seeds
    assert full["d_loss_mean"] == pytest.approx(0.7)
    assert full["d_loss_std"] == pytest.approx(0.2)  # sqrt(((-.2)^2 + 0 + .2^2) / 2)
    assert full["high_quality_std"] == pytest.approx(np.std([0.9, 0.8, 0.4], ddof=1))
    partly = by_config[(1e-4, 64)]  # one of two seeds diverged: the mean is the finite one's
    assert (partly["d_loss_mean"], partly["d_loss_std"], partly["num_diverged"]) == (0.6, 0.0, 1)
    single = by_config[(3e-4, 32)]  # a single seed: std 0.0, not NaN
    assert (single["modes_mean"], single["modes_std"], single["num_seeds"]) == (5.0, 0.0, 1)
    gone = by_config[(3e-4, 64)]
    assert math.isnan(gone["d_loss_mean"]) and math.isnan(gone["d_loss_std"]) and gone["num_diverged"] == 2


def test_summarize_default_metrics_and_by():
    rows = make_rows()
    summary = report.summarize(rows)
    metric_keys = [k for k in summary[0] if k.endswith("_mean")]
    assert metric_keys == [f"{m}_mean" for m in METRICS]  # no seed, step, diverged_step, wall_time_s, ...
    pooled = report.summarize(rows, by=("batch_size",), metrics=("d_loss",))
    assert [s["batch_size"] for s in pooled] == [32, 64]
    assert set(pooled[0]) == {"batch_size", "num_seeds", "num_diverged", "d_loss_mean", "d_loss_std"}
    assert pooled[0]["num_seeds"] == 7
    np.testing.assert_allclose(pooled[0]["d_loss_mean"], np.mean([0.5, 0.7, 0.9, 0.8, 1.1, 1.3, 1.2]))


# --------------------------------------------------------------------------------------
# results.csv and the summary files
# --------------------------------------------------------------------------------------


def test_results_csv_round_trip_keeps_values_and_types(tmp_path):
    # Other swept options come before the metrics in a row (as the sweep writes them), other metrics after.
    rows = [{"label_smoothing": 0.0, "loss": "minimax", **row, "fid": 12.5} for row in make_rows()]
    rows[0].update(label_smoothing=0.1 + 0.2, reverse_kl=math.inf, d_fake=float(np.float32(0.1)), run_id="007")
    rows[1].update(loss="ns", g_loss=-math.inf)
    del rows[2]["modes"]  # a key a row lacks stays absent
    path = tmp_path / "results.csv"
    report.write_results_csv(path, rows)
    back = report.read_results_csv(path)
    assert_rows_equal(back, rows)
    assert type(back[0]["run_id"]) is str and back[0]["run_id"] == "007"
    assert type(back[0]["batch_size"]) is int and type(back[0]["diverged"]) is bool
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["run_id", "population", "learning_rate", "batch_size"]
    assert header.index("label_smoothing") < header.index("seed") < header.index("step") < header.index("d_loss")
    assert header.index("no_high_quality") < header.index("fid") < header.index("diverged")
    assert header[-3:] == ["diverged", "diverged_step", "wall_time_s"]


def test_results_csv_numpy_values_and_explicit_columns(tmp_path):
    rows = [{"run_id": "a", "learning_rate": np.float64(3e-4), "batch_size": np.int64(64), "diverged": np.bool_(True),
             "d_loss": np.float32(0.1), "hidden": [64, 64]}]  # fmt: skip
    path = tmp_path / "results.csv"
    report.write_results_csv(path, rows, columns=["run_id", "batch_size", "d_loss", "hidden", "absent"])
    assert path.read_text().splitlines()[0] == "run_id,batch_size,d_loss,hidden,absent"
    (back,) = report.read_results_csv(path)
    assert back == {"run_id": "a", "batch_size": 64, "d_loss": float(np.float32(0.1)), "hidden": [64, 64]}
    report.write_results_csv(path, [])
    assert report.read_results_csv(path) == []


def test_write_summary_files(tmp_path):
    summary = report.summarize(make_rows())
    text = report.write_summary(tmp_path, summary)
    assert (tmp_path / "summary.md").read_text() == text
    lines = text.strip().splitlines()
    assert len(lines) == 2 + len(summary)  # header, separator, one line per configuration
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:2] == ["lr", "m"] and header[2:-2] == list(METRICS) and header[-2:] == ["seeds", "diverged"]
    assert set(lines[1]) <= set("|-:")
    assert [line.split("|")[1:3] for line in lines[2:]] == [
        [" 1e-4 ", " 32 "], [" 1e-4 ", " 64 "], [" 3e-4 ", " 32 "], [" 3e-4 ", " 64 "], [" 1e-3 ", " 32 "],
    ]  # fmt: skip
    assert "| 0.7 ± 0.2 |" in lines[2]  # d_loss of (1e-4, 32)
    assert "70.0% ± 26.5%" in lines[2]  # high_quality in %
    assert "| 5 ± 0 |" in lines[4]  # the single seed
    assert "diverged" in lines[5].split("|")[3]  # every seed diverged
    back = report.read_results_csv(tmp_path / "summary.csv")
    assert_rows_equal(back, summary)
    few = report.write_summary(tmp_path, summary, metrics=["modes"])
    assert few.splitlines()[0] == "| lr | m | modes | seeds | diverged |"


# --------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------


def test_heatmap_writes_png_with_grey_nan_cells(tmp_path):
    summary = report.summarize(make_rows())
    path = tmp_path / "heatmap_d_loss.png"
    report.plot_heatmap(summary, "d_loss", path, higher_is_better=False)
    image = assert_png(path, min_width=300)
    grey = np.all(np.abs(image[..., :3] - 211 / 255) < 0.01, axis=-1)  # matplotlib's "lightgrey"
    assert grey.sum() > 2000  # (3e-4, 64) diverged and (1e-3, 64) absent
    xs, ys, means, _, labels, _ = report._heatmap_cells(summary, "d_loss", "learning_rate", "batch_size")
    assert (xs, ys) == ([1e-4, 3e-4, 1e-3], [32, 64])
    assert labels[1][1] == "diverged" and labels[1][2] == "n/a" and np.isnan(means[1]).sum() == 2
    # No NaN cell, no grey.
    full = [s for s in summary if s["batch_size"] == 32]
    report.plot_heatmap(full, "high_quality", path, title="high-quality samples")
    image = assert_png(path)
    assert np.all(np.abs(image[..., :3] - 211 / 255) < 0.01, axis=-1).sum() < 500  # antialiased text edges only


def test_heatmap_all_nan_and_errors(tmp_path):
    summary = report.summarize(make_rows())
    for row in summary:
        row["reverse_kl_mean"] = NAN
    report.plot_heatmap(summary, "reverse_kl", tmp_path / "h.png", higher_is_better=None)
    assert_png(tmp_path / "h.png")
    with pytest.raises(ValueError, match="no fid_mean"):
        report.plot_heatmap(summary, "fid", tmp_path / "x.png")
    with pytest.raises(ValueError, match="one per cell"):
        report.plot_heatmap(summary + summary[:1], "d_loss", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    assert plt.get_fignums() == []


def test_curves_and_sample_panels(sweep):
    workdir, rows = sweep
    report.plot_curves(workdir, rows, workdir / "curves.png")
    assert_png(workdir / "curves.png", min_height=300, min_width=600)
    report.plot_sample_panels(workdir, rows, workdir / "samples.png", dataset=MIXTURE)
    assert_png(workdir / "samples.png", min_height=300, min_width=600)


def test_curves_and_samples_handle_missing_files(sweep):
    workdir, rows = sweep
    for row in rows:
        if (row["learning_rate"], row["batch_size"]) == (1e-4, 32):  # a whole panel without files
            os.remove(workdir / "runs" / row["run_id"] / "metrics.jsonl")
            os.remove(workdir / "runs" / row["run_id"] / "samples.npy")
    os.remove(workdir / "runs" / rows[-1]["run_id"] / "metrics.jsonl")  # one seed of a panel
    rows = [*rows, {**rows[0], "run_id": "never_ran", "learning_rate": 1e-3, "batch_size": 64, "seed": 0}]
    report.plot_curves(workdir, rows, workdir / "curves.png")
    assert_png(workdir / "curves.png")
    report.plot_sample_panels(workdir, rows, workdir / "samples.png", dataset=MIXTURE)
    assert_png(workdir / "samples.png")
    report.plot_sample_panels(workdir, rows, workdir / "samples_seed2.png", seed=2)  # most configs lack seed 2
    assert_png(workdir / "samples_seed2.png")


def test_one_panel_grid_and_image_samples(tmp_path):
    rows = make_rows({(1e-3, 64): [(0.7, 8, 0.9, False)]})
    make_sweep(tmp_path, rows, image_shape=(8, 8, 1))
    digits = types.SimpleNamespace(info={}, value_range=(-1.0, 1.0))
    report.plot_sample_panels(tmp_path, rows, tmp_path / "samples.png", dataset=digits)
    assert_png(tmp_path / "samples.png")
    report.plot_curves(tmp_path, rows, tmp_path / "curves.png", metrics=("d_loss", "g_loss"))
    assert_png(tmp_path / "curves.png")
    report.plot_heatmap(report.summarize(rows), "modes", tmp_path / "heatmap.png")
    assert_png(tmp_path / "heatmap.png", min_width=200)
    with pytest.raises(ValueError, match="no runs"):
        report.plot_curves(tmp_path, [], tmp_path / "none.png")


def test_save_samples_still_works(tmp_path):
    rng = np.random.default_rng(0)
    report.save_samples(rng.normal(size=(100, 2)), tmp_path / "points.png", dataset=MIXTURE, title="step 10")
    assert_png(tmp_path / "points.png")
    report.save_samples(rng.uniform(size=(9, 6, 6, 3)), tmp_path / "images.png")
    assert_png(tmp_path / "images.png", min_height=100, min_width=100)


# --------------------------------------------------------------------------------------
# atomic writes and layering
# --------------------------------------------------------------------------------------


def test_a_plot_that_fails_midway_leaves_no_file(sweep, monkeypatch):
    workdir, rows = sweep
    summary = report.summarize(rows)

    def broken_savefig(self, fname, *args, **kwargs):
        with open(fname, "wb") as f:
            f.write(PNG_SIGNATURE)  # a partial file under the temporary name...
        raise RuntimeError("disk full")  # ...then the failure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    out = workdir / "out"
    out.mkdir()
    (out / "kept.png").write_bytes(b"old")
    plots = {
        "heatmap.png": lambda p: report.plot_heatmap(summary, "d_loss", p),
        "curves.png": lambda p: report.plot_curves(workdir, rows, p),
        "samples.png": lambda p: report.plot_sample_panels(workdir, rows, p, dataset=MIXTURE),
        "kept.png": lambda p: report.save_samples(np.zeros((4, 2)), p),
    }
    for name, plot in plots.items():
        with pytest.raises(RuntimeError, match="disk full"):
            plot(out / name)
        assert sorted(os.listdir(out)) == ["kept.png"], name  # no target, no temporary file
        assert plt.get_fignums() == [], name
    assert (out / "kept.png").read_bytes() == b"old"


def test_a_table_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    rows = make_rows()
    report.write_results_csv(tmp_path / "results.csv", rows[:1])
    before = (tmp_path / "results.csv").read_bytes()

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        report.write_results_csv(tmp_path / "results.csv", rows)
    with pytest.raises(OSError, match="rename failed"):
        report.write_summary(tmp_path, report.summarize(rows))
    assert sorted(os.listdir(tmp_path)) == ["results.csv"]
    assert (tmp_path / "results.csv").read_bytes() == before


def test_report_imports_no_training_code():
    tree = ast.parse(open(report.__file__, encoding="utf-8").read())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.update(f"{node.module}.{alias.name}" if node.module == "bce_gan" else node.module for alias in node.names)
    roots = {name.split(".")[0] for name in modules}
    assert roots <= {"__future__", "collections", "csv", "io", "json", "math", "matplotlib", "numpy", "os", "re", "threading", "typing", "bce_gan"}
    assert {name for name in modules if name.startswith("bce_gan")} == {"bce_gan.io"}
