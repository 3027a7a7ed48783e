"""Smoke test of benchmarks/styles.py: a tiny listening set on a synthetic song, offline."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from conftest import click_track, sine

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "styles.py"


def _bench():
    spec = importlib.util.spec_from_file_location("benchmark_styles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_listening_set_writes_renders_calls_csv_and_sheet(tmp_path, monkeypatch):
    from tools.audio import Audio, save

    monkeypatch.setenv("REMIX_SEPARATOR", "dsp")
    monkeypatch.setenv("REMIX_GENERATOR", "dsp")
    bench = _bench()
    song = tmp_path / "synth.wav"
    samples = click_track(120, 4.0) + sine(110.0, 4.0, amplitude=0.2) + sine(330.0, 4.0, amplitude=0.1)
    save(Audio(samples, 44100), song)
    out = tmp_path / "out"
    settings = bench.bench_settings(out)
    jobs = bench.listening_jobs(["lofi", "echo"], ["house"], [1.0])

    report = bench.listening_set(song, "synth", out, jobs, settings, echo=lambda line: None)

    folder = out / "synth"
    names = ["base", "style-lofi-1.0", "style-echo-1.0", "genre-house-1.0"]
    assert report.failures == 0
    for name in names:
        assert (folder / f"{name}.wav").stat().st_size > 1000
        assert isinstance(json.loads((folder / f"{name}.json").read_text()), list)
    assert json.loads((folder / "style-lofi-1.0.json").read_text()) == [
        {"tool": "restyle", "args": {"style": "lofi", "amount": 1.0}}
    ]
    with (folder / "measurements.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == names
    assert all(row["error"] == "" and row["nonfinite"] == "0" for row in rows)
    assert np.isfinite(float(rows[-1]["bpm_err"]))
    assert (folder / "contact_sheet.png").stat().st_size > 10_000
    assert "4 renders (0 failed)" in bench.summary_line(report)
