"""Vocal styles: a listening set with a contact sheet, and the speed of every preset.

Usage:
    python benchmarks/vocals.py [--out DIR] [--song PATH ...] [--no-demo] [--presets a,b] [--amounts 0.5,1.0]
    python benchmarks/vocals.py --speed [--speed-minutes 3] [--repeat 2]

Listening set (the default): the demo song and the public multitrack with a real voice
(``../shared/media/stems/voice_over_ttsong_iii/mixture.flac``; more with ``--song``), every
``revoice`` preset at each amount, rendered through the product's own path (the separator the
product picks, ``Renderer``, tool calls) into ``OUT/<song>/<preset>-<amount>.wav``, with the
calls beside it (``.json``, for ``remix render SONG --calls ...``) and the re-voiced vocals
stem alone (``<preset>-<amount>.vocals.wav``) for close listening. Per song,
``contact_sheet.png``: one row per preset, one column per amount, each cell the vocals stem's
spectrogram (60 Hz-4 kHz, log frequency) over the same window, with the input's f0 (white,
dotted) and the output's (cyan) from the Praat tracker, so that a glance shows whether notes
landed on the grid lines (autotune), moved up or down (gender), gained parallel lines
(harmony, choir) or lost their pitch (whisper). The table adds two artefact measures from the
Praat tracker: ``jumps``, pitch jumps of over 5 semitones between neighbouring voiced frames
per minute, less the input's (warble and octave flips), and ``tones``, the share of the
input's unvoiced frames (away from note edges) that come out voiced (breaths turned into
tones; harmonies, doubles and the choir's reverb legitimately add some). Renders use a data folder of their own
(``OUT/_data``); the separation is cached there between runs, the render stages are not
(cleared at the start, so every stage time is a computed one).

``--speed``: a song of ``--speed-minutes`` (the multitrack's true stems looped), its stems put
in the render context as if cached, and for each preset at amount 1: the seconds of
``revoice`` with the pitch analysis and PSOLA set-up included (a first request on a song),
the same with them warm (a refinement), and the whole render (stem mix, master) with a fresh
renderer. The target: under 10 s per preset on 2 cores once stems are cached. Then the peak
memory of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MULTITRACK = ROOT.parent / "shared" / "media" / "stems" / "voice_over_ttsong_iii"
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "vocals"
TARGET_S = 10.0
SHEET_WINDOW_S = 12.0


def _settings(out: Path):
    from tools.settings import Settings

    return Settings.from_env({**os.environ, "REMIX_DATA_DIR": str(out / "_data")})


def _songs(args, out: Path) -> list[Path]:
    songs: list[Path] = []
    if not args.no_demo:
        from tools.demo import write_demo

        songs.append(write_demo(out / "_demo")["mix"])
    if (MULTITRACK / "mixture.flac").exists():
        songs.append(MULTITRACK / "mixture.flac")
    songs += [Path(p) for p in args.song]
    return songs


def _save(path: Path, audio) -> None:
    from tools.audio import save

    path.parent.mkdir(parents=True, exist_ok=True)
    save(audio, path)


def _window(vocals: np.ndarray, sr: int) -> tuple[int, int]:
    """The SHEET_WINDOW_S seconds of the vocals with the most voice (energy), on whole seconds."""
    length = min(vocals.shape[1], int(SHEET_WINDOW_S * sr))
    running = np.concatenate([[0.0], np.cumsum(np.mean(vocals, axis=0).astype(np.float64) ** 2)])
    starts = np.arange(0, vocals.shape[1] - length + 1, sr)
    energy = running[starts + length] - running[starts]
    start = int(starts[int(np.argmax(energy))])
    return start, start + length


def _sheet(path: Path, title: str, cells: dict, amounts: list[float], sr: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    from tools.pitch import track

    rows = ["original"] + sorted({name for name, _ in cells if name != "original"}, key=_preset_order)
    fig, axes = plt.subplots(len(rows), len(amounts), figsize=(6 * len(amounts), 2.1 * len(rows)), squeeze=False)
    base = cells[("original", None)]
    base_track = track(base.mean(axis=0), sr)
    for r, name in enumerate(rows):
        for c, amount in enumerate(amounts):
            ax = axes[r][c]
            audio = base if name == "original" else cells.get((name, amount))
            if audio is None or (name == "original" and c > 0):
                ax.axis("off")
                continue
            mono = audio.mean(axis=0)
            freqs, times, z = stft(mono, fs=sr, nperseg=2048, noverlap=2048 - 512)
            db = 20 * np.log10(np.abs(z) + 1e-7)
            keep = (freqs >= 60) & (freqs <= 4000)
            ax.pcolormesh(times, freqs[keep], db[keep], shading="auto", cmap="magma", vmin=db.max() - 80, vmax=db.max())
            ax.set_yscale("log")
            ax.set_ylim(60, 4000)
            out_track = base_track if name == "original" else track(mono, sr)
            f_in = np.where(base_track.voiced, base_track.f0, np.nan)
            f_out = np.where(out_track.voiced, out_track.f0, np.nan)
            ax.plot(base_track.times, f_in, ":", color="white", linewidth=0.8)
            if name != "original":
                ax.plot(out_track.times, f_out, color="cyan", linewidth=1.0)
            label = "original (separated vocals)" if name == "original" else f"{name} {amount:g}"
            ax.set_title(label, fontsize=9, loc="left")
            ax.tick_params(labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _artefacts(before, after) -> tuple[float, float]:
    """``(jumps, tones)``: pitch jumps of over 5 semitones between neighbouring voiced frames of
    the output, per minute, less the input's (warble, octave flips); and the share of the
    input's unvoiced frames, away from note edges, that the output voices (breaths turned to tones)."""
    def jump_rate(t):
        midi = t.midi()
        both = t.voiced[1:] & t.voiced[:-1]
        steps = np.abs(np.diff(midi))[both]
        minutes = max(len(t.f0) * t.hop_s / 60.0, 1e-9)
        return float(np.sum(steps > 5.0)) / minutes

    n = min(len(before.f0), len(after.f0))
    edges = np.convolve(before.voiced[:n].astype(float), np.ones(9), mode="same") > 0
    quiet = ~before.voiced[:n] & ~edges
    tones = float(after.voiced[:n][quiet].mean()) if quiet.any() else 0.0
    return jump_rate(after) - jump_rate(before), tones


def _preset_order(name: str) -> int:
    from tools.voices import VOICE_PRESETS

    return VOICE_PRESETS[name].order if name in VOICE_PRESETS else 99


def listening_set(args) -> int:
    from tools.calls import apply_calls
    from tools.render import Renderer, Source

    out = Path(args.out)
    settings = _settings(out)
    import shutil

    shutil.rmtree(settings.cache_dir / "stages", ignore_errors=True)  # every stage time a computed one
    presets = args.presets.split(",") if args.presets else None
    from tools.voices import VOICE_PRESETS

    presets = presets or list(VOICE_PRESETS)
    amounts = [float(a) for a in args.amounts.split(",")]
    failures = 0
    for song in _songs(args, out):
        folder = out / (song.parent.name if song.stem == "mixture" else song.stem)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "README.txt").write_text(f"song: {song}\n")
        source = Source.from_path(song, settings)
        renderer = Renderer(settings)
        context = renderer.context(source)
        started = time.perf_counter()
        stems = context.stems().stems
        print(f"{song.name}: stems by {context.separator.name} ({time.perf_counter() - started:.1f} s)")
        sr = stems["vocals"].sample_rate
        start, stop = _window(stems["vocals"].samples, sr)
        cells = {("original", None): stems["vocals"].samples[:, start:stop]}
        _save(folder / "original.vocals.wav", stems["vocals"])
        from tools.pitch import track

        base_track = track(stems["vocals"].samples.mean(axis=0), sr)
        print(f"  {'preset':<10} {'amount':>6} {'stage_s':>8} {'total_s':>8} {'jumps':>6} {'tones':>6}  notes")
        for preset in presets:
            for amount in amounts:
                calls = [{"tool": "revoice", "args": {"voice": preset, "amount": amount}}]
                name = f"{preset}-{amount:g}"
                try:
                    spec = apply_calls(calls, analysis=lambda: context.analysis)
                    result = renderer.render(source, spec)
                    _save(folder / f"{name}.wav", result.audio)
                    (folder / f"{name}.json").write_text(json.dumps(calls))
                    vocals = context.voiced_stems(spec)["vocals"]
                    _save(folder / f"{name}.vocals.wav", vocals)
                    cells[(preset, amount)] = vocals.samples[:, start:stop]
                    stage = sum(r.seconds for r in result.stages if r.name == "stem_mix")
                    notes = "; ".join(n for n in result.notes if not n.startswith("stems by"))
                    jumps, tones = _artefacts(base_track, track(vocals.samples.mean(axis=0), sr))
                    print(f"  {preset:<10} {amount:>6g} {stage:>8.2f} {result.seconds:>8.2f} {jumps:>6.1f} {tones:>6.1%}  {notes}")
                except Exception as error:  # noqa: BLE001 - report and go on
                    failures += 1
                    print(f"  {preset:<10} {amount:>6g} FAILED: {type(error).__name__}: {error}")
        _sheet(folder / "contact_sheet.png", f"{song.name}: vocal styles", cells, amounts, sr)
        print(f"  contact sheet: {folder / 'contact_sheet.png'}")
    return 1 if failures else 0


def speed(args) -> int:
    import soundfile as sf

    from tools import voices as vx
    from tools.audio import Audio
    from tools.calls import apply_calls
    from tools.render import Renderer, Source
    from tools.separate import StemSet
    from tools.spec import VoiceSettings

    out = Path(args.out)
    settings = _settings(out)
    minutes = float(args.speed_minutes)
    stems = {}
    for name in ("vocals", "drums", "bass", "other"):
        data, sr = sf.read(MULTITRACK / f"{name}.flac", always_2d=True, dtype="float32")
        reps = int(np.ceil(minutes * 60 * sr / len(data)))
        stems[name] = np.tile(data.T, (1, reps))[:, : int(minutes * 60 * sr)]
    mix = sum(stems.values())
    source = Source.from_audio(Audio(mix, sr))
    print(f"{minutes:g}-minute song ({MULTITRACK.name} looped), {os.cpu_count()} cores, true stems as the cached stems")
    print(f"{'preset':<10} {'cold_s':>7} {'warm_s':>7} {'render_s':>9} {'target':>7}")
    worst = 0.0
    for preset in vx.VOICE_PRESETS:
        voices = {preset: VoiceSettings(amount=1.0)}
        cold, warm = [], []
        for _ in range(args.repeat):
            vx._ENGINES.clear()
            context = vx.VoiceContext(key_pitch_class=9, mode="minor", seed=1, cache_key=None)
            started = time.perf_counter()
            vx.revoice(Audio.trusted(stems["vocals"], sr), voices, context)
            cold.append(time.perf_counter() - started)
        key_context = dict(key_pitch_class=9, mode="minor", seed=1, cache_key="speed", cache_folder=out / "_pitch")
        vx.revoice(Audio.trusted(stems["vocals"], sr), voices, vx.VoiceContext(**key_context))
        for _ in range(args.repeat):
            started = time.perf_counter()
            vx.revoice(Audio.trusted(stems["vocals"], sr), voices, vx.VoiceContext(**key_context))
            warm.append(time.perf_counter() - started)
        vx._ENGINES.clear()
        renderer = Renderer(settings, disk=False)
        context = renderer.context(source)
        context._stems = StemSet({k: Audio.trusted(v, sr) for k, v in stems.items()}, "true", "true-stems")
        spec = apply_calls([{"tool": "revoice", "args": {"voice": preset, "amount": 1.0}}])
        started = time.perf_counter()
        renderer.render(source, spec)
        total = time.perf_counter() - started
        worst = max(worst, total)
        verdict = "ok" if total < TARGET_S else "SLOW"
        print(f"{preset:<10} {min(cold):>7.2f} {min(warm):>7.2f} {total:>9.2f} {verdict:>7}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"slowest whole render {worst:.2f} s (target {TARGET_S:g} s); peak memory {peak_mb:.0f} MB")
    return 0 if worst < TARGET_S else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--song", action="append", default=[])
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--presets", default="")
    parser.add_argument("--amounts", default="0.5,1.0")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--speed-minutes", default="3")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    return speed(args) if args.speed else listening_set(args)


if __name__ == "__main__":
    sys.exit(main())
