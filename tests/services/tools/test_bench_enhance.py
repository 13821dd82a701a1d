"""``classroom bench enhance`` runs end to end on a tiny synthetic set and prints every table."""

import argparse

from services.tools import bench_enhance as bench


def test_bench_prints_quality_and_speed_tables(capsys, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        [
            "--data",
            "synthetic",
            "--frames",
            "2",
            "--repeats",
            "2",
            "--sizes",
            "320x180",
            "--device",
            "none",
            "--json",
            str(tmp_path / "figures.json"),
        ]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out
    for row in (
        "proposed (multi-scale weighted GF Retinex)",
        "MSRCR",
        "conventional (5x5 median)",
        "proposed, CLAHE",
    ):
        assert row in out
    assert "| 320x180 " in out
    assert "Service worker path" in out and "processes / threads" in out
    assert (tmp_path / "figures.json").stat().st_size > 0


def test_table_renders_aligned_columns() -> None:
    table = bench.Table("t", ["a", "bb"], [["x", 1.23456], ["long name", 123.0]])
    lines = table.render().splitlines()
    assert lines[2] == "| a         | bb    |"
    assert lines[4] == "| x         | 1.235 |" and lines[5] == "| long name | 123.0 |"
