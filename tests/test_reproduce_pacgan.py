"""PacGAN Table 1 reproduction: a CI-sized run of the quick mode (few steps) prints and writes the table."""

from experiments import reproduce_pacgan


def test_quick_mode_tiny_run_writes_the_table(tmp_path, capsys):
    code = reproduce_pacgan.main(["--quick", "--datasets", "ring8", "--seeds", "2", "--num-steps", "10",
                                  "--workdir", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    for row in ("| ring8 | GAN |", "| ring8 | PacGAN2 |"):
        assert row in out
    assert "6.30 ± 0.50" in out  # the published value beside ours
    table = (tmp_path / "results" / "pacgan_table.md").read_text()
    assert table.count("\n") == 4
    assert (tmp_path / "results" / "pacgan_table.csv").exists()


def test_mean_and_standard_error():
    mean, se = reproduce_pacgan._mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and abs(se - 1 / 3**0.5) < 1e-12


def test_unknown_dataset_is_refused(capsys):
    assert reproduce_pacgan.main(["--datasets", "spiral"]) == 2
    assert "spiral" in capsys.readouterr().err
