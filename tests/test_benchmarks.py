"""Smoke test of the benchmark suite: one tiny entry through the CLI; checks the table and JSON structure only."""

import json
from pathlib import Path

import benchmarks
import pytest
from benchmarks import REGISTRY, register
from benchmarks.__main__ import main
from benchmarks._plots import FIGURES
from benchmarks._report import format_rows
from benchmarks._runner import run, select


@pytest.fixture
def temp_entries():
    """Register an unavailable entry and a failing one; remove them afterwards."""
    register("test.missing", family="test", kind="speed", description="x", requires=lambda: "solver not installed (X)")(
        lambda suite: [{"never": 1}]
    )

    def boom(suite):
        raise RuntimeError("kaput")

    register("test.error", family="test", kind="speed", description="x")(boom)
    yield
    for name in ("test.missing", "test.error"):
        REGISTRY.pop(name, None)


def test_cli_runs_one_entry_and_writes_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["run", "--suite", "smoke", "--only", "reference.mixtures", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== reference.mixtures  [ok]" in printed
    assert "floor_paper_%" in printed.splitlines()[2]  # the column header line of the table
    record = json.loads(out.read_text())
    assert record["command"] == "python -m benchmarks run --suite smoke --only reference.mixtures --out " + str(out)
    assert record["suite"] == "smoke"
    assert {"started", "finished", "machine", "versions", "results"} <= set(record)
    assert {"cpu", "cpu_count", "load_avg_1_5_15", "jax_backend", "git_commit"} <= set(record["machine"])
    assert {"nescot", "jax", "ott-jax"} <= set(record["versions"])
    (res,) = record["results"]
    assert res["name"] == "reference.mixtures" and res["status"] == "ok" and res["seconds"] > 0
    (row,) = res["rows"]
    assert set(row) == {"d", "eps_paper", "var_Q", "mean_err/sd", "top_component_weight", "floor_paper_%"}
    assert row["d"] == 2 and row["floor_paper_%"] > 0
    assert main(["report", str(out)]) == 0
    md = capsys.readouterr().out
    assert "#### `reference.mixtures` (ok" in md and "| d | eps_paper |" in md


def test_missing_solver_is_skipped_and_errors_are_recorded(temp_entries, capsys):
    record = run(["test.missing", "test.error"], "smoke")
    missing, error = record["results"]
    assert missing["status"] == "skipped" and missing["rows"] == []
    assert missing["reason"] == "not available: solver not installed (X)"
    assert error["status"] == "error" and "RuntimeError: kaput" in error["reason"]
    assert "[skipped]" in capsys.readouterr().out


def test_every_family_registers_and_names_select():
    names = select(None, "full")
    assert {b.family for b in benchmarks.load_all().values()} >= {"genot", "egnot", "sparse_icnn", "translation"}
    assert select(["genot.speed"], "full") == ["genot.speed.train", "genot.speed.transport", "genot.speed.compile"]
    assert "genot.scale.cells" in names and "genot.scale.cells" not in select(None, "smoke")
    with pytest.raises(SystemExit, match="No benchmark matches"):
        select(["nope"], "quick")


def test_format_rows_aligns_union_of_columns():
    lines = format_rows([{"a": 1, "b": 0.123456}, {"a": 22, "c": "x"}]).splitlines()
    assert lines[0].split() == ["a", "b", "c"] and lines[2].split() == ["1", "0.1235"]
    assert len({len(line.rstrip()) for line in lines[:2]}) == 1


def test_plot_draws_every_figure_from_the_committed_records(tmp_path, capsys):
    assert main(["plot", "--out", str(tmp_path / "figs")]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / "figs" / name) for name in FIGURES]
    for path in map(Path, written):
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
