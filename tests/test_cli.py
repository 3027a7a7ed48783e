"""The `remix` command line: demo, analyze, render; clear errors and exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import click_track
from tools.loudness import integrated_lufs, true_peak_dbfs
from tools.audio import Audio, load, save
from ui.cli import main


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("song") / "clicks.wav"
    rng = np.random.default_rng(0)
    clicks = click_track(100.0, 12.0) + (rng.standard_normal((2, 12 * 44100)) * 0.01).astype(np.float32)
    save(Audio(clicks, 44100), path)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_render_empty_spec_is_mastered(song, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    code, out, err = run_cli(capsys, "render", str(song), "--spec", str(spec), "-o", str(tmp_path / "out.flac"))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["stages"] == {"master": "computed"}
    rendered = load(tmp_path / "out.flac")
    assert integrated_lufs(rendered) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbfs(rendered) <= -1.0 + 0.05


def test_render_calls_changes_tempo_and_saves_spec(song, tmp_path, capsys):
    calls = tmp_path / "calls.json"
    calls.write_text(json.dumps([{"tool": "tempo_pitch", "args": {"tempo_pct": 25, "semitones": -1}}]))
    out_path, spec_path = tmp_path / "fast.wav", tmp_path / "used.json"
    code, out, err = run_cli(
        capsys, "render", str(song), "--calls", str(calls), "-o", str(out_path), "--save-spec", str(spec_path)
    )
    assert code == 0, err
    info = sf.info(out_path)
    assert info.frames == pytest.approx(12 * 44100 / 1.25, abs=2)
    assert json.loads(spec_path.read_text())["tempo"]["ratio"] == 1.25


def test_analyze_prints_the_promised_fields(song, capsys):
    code, out, err = run_cli(capsys, "analyze", str(song))
    assert code == 0, err
    data = json.loads(out)
    for key in ("tempo", "beats", "downbeats", "sections", "key", "mode", "loudness_lufs"):
        assert key in data
    assert data["tempo"] == pytest.approx(100.0, abs=1.0)
    assert {"label", "ordinal", "start", "end", "energy"} <= set(data["sections"][0])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["render", "{missing}", "--spec", "{spec}", "-o", "{out}"], "nothing.wav"),
        (["render", "{song}", "--spec", "{bad_spec}", "-o", "{out}"], "not a valid remix spec"),
        (["render", "{song}", "--spec", "{missing_spec}", "-o", "{out}"], "no such spec file"),
        (["render", "{song}", "--calls", "{bad_calls}", "-o", "{out}"], "tempo_pitch arguments"),
        (["render", "{song}", "--calls", "{model_calls}", "-o", "{out}"], "voice model 'nobody_sings' not found"),
        (["render", "{song}", "--spec", "{spec}", "-o", "{out}", "make it lo-fi"], "not several"),
        (["render", "{song}", "--spec", "{spec}", "-o", "{bad_out}"], "supported"),
        (["render", "{text}", "--spec", "{spec}", "-o", "{out}"], "notes.wav"),
        (["analyze", "{missing}"], "nothing.wav"),
    ],
)
def test_errors_are_messages_not_tracebacks(argv, message, song, tmp_path, capsys):
    (tmp_path / "spec.json").write_text("{}")
    (tmp_path / "bad.json").write_text('{"pitch": {"semitones": 99}}')
    (tmp_path / "badcalls.json").write_text('[{"tool": "tempo_pitch", "args": {"semitones": "up"}}]')
    (tmp_path / "model.json").write_text('[{"tool": "revoice", "args": {"voice": "Nobody Sings"}}]')
    (tmp_path / "notes.wav").write_text("this is not audio")
    names = {
        "missing": tmp_path / "nothing.wav",
        "song": song,
        "spec": tmp_path / "spec.json",
        "bad_spec": tmp_path / "bad.json",
        "missing_spec": tmp_path / "nope.json",
        "bad_calls": tmp_path / "badcalls.json",
        "model_calls": tmp_path / "model.json",
        "text": tmp_path / "notes.wav",
        "out": tmp_path / "out.wav",
        "bad_out": tmp_path / "out.xyz",
    }
    code, out, err = run_cli(capsys, *[a.format(**names) for a in argv])
    assert code == 2
    assert message in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "out.wav").exists()


def test_demo_writes_mix_and_true_stems(tmp_path, capsys):
    code, out, err = run_cli(capsys, "demo", "-o", str(tmp_path / "demo"))
    assert code == 0, err
    mix, rate = sf.read(tmp_path / "demo" / "mix.wav", always_2d=True)
    stems = [sf.read(tmp_path / "demo" / f"{name}.wav", always_2d=True)[0] for name in ("vocals", "drums", "bass", "other")]
    assert rate == 44100 and 80 <= len(mix) / rate <= 100
    assert np.abs(sum(stems) - mix).max() < 1e-3


def test_installed_entry_point_and_help():
    remix = Path(sys.executable).parent / "remix"
    if not remix.exists():
        pytest.skip("the console script is installed by `pip install -e .`")
    result = subprocess.run([str(remix), "render", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--calls" in result.stdout and "--spec" in result.stdout
    result = subprocess.run([str(remix), "analyze"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "SONG" in result.stderr


def test_separate_writes_four_stems_that_sum_to_the_song(song, tmp_path, capsys):
    code, out, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "stems"), "--backend", "dsp")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["backend"] == "dsp" and summary["from_cache"] is False
    mix, rate = sf.read(song, always_2d=True)
    total = 0
    for name in ("vocals", "drums", "bass", "other"):
        stem, stem_rate = sf.read(tmp_path / "stems" / f"{name}.wav", always_2d=True)
        assert stem_rate == rate and stem.shape == mix.shape
        total = total + stem
    assert np.abs(total - mix).max() < 1e-4
    code, out, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "again"), "--backend", "dsp")
    assert code == 0 and json.loads(out)["from_cache"] is True


def test_separate_with_demucs_but_no_weights_says_where_to_put_them(song, tmp_path, capsys):
    code, out, err = run_cli(capsys, "separate", str(song), "-o", str(tmp_path / "stems"), "--backend", "demucs")
    assert code == 2
    assert "htdemucs.th" in err and "Traceback" not in err


def test_render_from_requests_in_words(song, tmp_path, capsys, monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    spec_path = tmp_path / "spec.json"
    code, out, err = run_cli(
        capsys, "render", str(song), "-o", str(tmp_path / "lofi.wav"), "make it lo-fi", "a bit more", "--save-spec", str(spec_path)
    )
    assert code == 0, err
    spec = json.loads(spec_path.read_text())
    assert spec["styles"]["lofi"]["amount"] > 0.5  # set, then a step more
    assert "make it lo-fi" in err and json.loads(out)["stages"]["styles"] == "computed"


def test_chat_in_the_terminal(song, tmp_path, capsys, monkeypatch):
    import io

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("make it 10% faster\nundo that\nwhat key is it in?\n"))
    code, out, err = run_cli(capsys, "chat", str(song), "-o", str(tmp_path / "versions"))
    assert code == 0, err
    assert "tempo_pitch" in out and "history" in out
    assert (tmp_path / "versions" / "v1.wav").exists() and (tmp_path / "versions" / "v0.wav").exists()


def test_the_ledger_counts_what_the_command_line_renders(song, tmp_path, capsys, monkeypatch):
    import csv
    import io

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REMIX_DATA_DIR", str(tmp_path / "data"))
    code, out, err = run_cli(capsys, "render", str(song), "-o", str(tmp_path / "a.flac"), "make it lo-fi", "a whole tone lower")
    assert code == 0, err
    calls = tmp_path / "calls.json"
    calls.write_text(json.dumps([{"tool": "tempo_pitch", "args": {"tempo_pct": 10}}]))
    code, out, err = run_cli(capsys, "render", str(song), "--calls", str(calls), "-o", str(tmp_path / "b.wav"))
    assert code == 0, err
    code, out, err = run_cli(capsys, "ledger")
    assert code == 0, err
    [entry] = json.loads(out)
    assert entry["source"]["name"] == "clicks.wav" and len(entry["source"]["sha256"]) == 64
    remixes = {(r["request"], r["version"]): r for r in entry["remixes"]}
    assert remixes[("a whole tone lower", 2)]["lineage"][1]["request"] == "make it lo-fi"
    assert remixes[("a whole tone lower", 2)]["export"] == 1 and remixes[("calls file calls.json", 1)]["render"] == 1
    assert entry["totals"]["export"] == 2
    code, out, err = run_cli(capsys, "ledger", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["lineage"] for r in rows} >= {"v0 > v1 > v2", "v0 > v1"} and all(r["source_name"] == "clicks.wav" for r in rows)
    code, out, err = run_cli(capsys, "clean", "--days", "30")
    assert code == 0 and json.loads(out)["removed_files"] == 0  # nothing is old yet


def test_chat_comes_back_to_a_session(song, tmp_path, capsys, monkeypatch):
    import io
    import re

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REMIX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("make it 10% faster\n"))
    code, out, err = run_cli(capsys, "chat", str(song))
    session_id = re.search(r"--session (\w+)", out).group(1)
    monkeypatch.setattr(sys, "stdin", io.StringIO("versions\n"))
    code, out, err = run_cli(capsys, "chat", "--session", session_id)
    assert code == 0, err
    assert "2 versions, now on v1" in out and "* v1 (from v0)" in out
    code, out, err = run_cli(capsys, "chat", "--session", "0" * 32)
    assert code != 0 and "no session" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "chat")
    assert code != 0 and "--session" in err
