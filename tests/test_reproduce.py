"""``simsps reproduce``: the report's comparison logic, its coverage of every number the
seed paper reports, and a tiny end-to-end run (figures and report; the bands themselves
need the quick or full sizes, which `make demo` runs)."""

import json
import math
import tomllib
from pathlib import Path

import pytest

from simsps.apps.cli import main
from simsps.apps.reproduce import FIGURES, Config, reproduce, seed_numbers
from simsps.apps.reproduce.report import row

SHARED = Path(__file__).resolve().parents[2] / "shared" / "seed_numbers.toml"


@pytest.mark.skipif(not SHARED.is_file(), reason="shared/seed_numbers.toml not beside the repo")
def test_bundled_seed_numbers_are_the_shared_ones():
    assert seed_numbers() == tomllib.loads(SHARED.read_text())


def test_row_comparisons():
    assert row("fig3b_fwhm_nm", "3b", "q", 15.2, 0.1, dataset="d", how="h").ok
    assert not row("fig3b_fwhm_nm", "3b", "q", 17.5, dataset="d", how="h").ok
    assert row("fig3d_g2_zero_bluest_ncs", "3d", "q", 0.19, dataset="d", how="h").ok  # max
    assert not row("fig3d_g2_zero_bluest_ncs", "3d", "q", 0.21, dataset="d", how="h").ok
    assert row("fig3d_g2_zero_reddest_ncs", "3d", "q", 0.71, dataset="d", how="h").ok  # min
    assert not row("fig3d_g2_zero_reddest_ncs", "3d", "q", math.nan, dataset="d", how="h").ok
    r = row("fig3a_cew_range_nm", "3a", "q", [503.0, 519.5], dataset="d", how="h")
    assert r.ok and r.simulated == [503.0, 519.5] and r.paper == [504.0, 518.0]
    assert not row("fig3a_cew_range_nm", "3a", "q", [501.0, 519.0], dataset="d", how="h").ok
    # a range must reach the paper's ends: a narrow population fails
    assert not row("fig3a_cew_range_nm", "3a", "q", [507.0, 515.0], dataset="d", how="h").ok
    assert row("fig3a_cew_range_nm", "3a", "q", [505.9, 516.1], dataset="d", how="h").ok
    with pytest.raises(KeyError):
        row("no_such_key", "1", "q", 1.0, dataset="d", how="h")


@pytest.mark.slow
def test_quick_run_is_within_every_band(tmp_path):
    """`make demo`'s run (--quick): every figure, a row per paper number, every row within
    its band (each row's negative control is in test_reproduce_controls.py)."""
    doc = reproduce(tmp_path, quick=True, seed=0, progress=False)
    bad = [f"{r['key']}: {r['simulated']}" for r in doc["rows"] if not r["ok"]]
    assert not bad, bad
    assert doc["mode"] == "quick"
    for name, _, _ in FIGURES:
        assert (tmp_path / f"fig{name}.png").stat().st_size > 10_000, name
    assert doc["details"]["4c"]["intensity_lifetime_correlation"] > 0.4


@pytest.mark.slow
def test_tiny_run_writes_every_figure_and_a_row_per_paper_number(tmp_path):
    doc = reproduce(tmp_path, config=Config.tiny(), seed=3, progress=False)
    for name, _, _ in FIGURES:
        png = tmp_path / f"fig{name}.png"
        assert png.stat().st_size > 10_000, name
    assert sorted(r["key"] for r in doc["rows"]) == sorted(seed_numbers())
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["n_rows"] == len(seed_numbers()) and on_disk["mode"] == "custom sizes"
    assert set(on_disk["datasets"]) >= {
        "zn_psat",
        "power_series",
        "population",
        "widefield",
        "empty_spot",
        "pristine_psat",
        "drift_spectra",
    }
    md = (tmp_path / "report.md").read_text()
    assert md.count("\n| ") >= len(seed_numbers()) + 1
    for r in doc["rows"]:
        assert r["how"] and r["dataset"] and isinstance(r["ok"], bool)


def test_cli_reproduce_usage(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--figures", "9z"]) == 2
    assert "unknown figure" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--quick"])  # --out is required
    assert e.value.code == 2
