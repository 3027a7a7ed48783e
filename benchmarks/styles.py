"""Style presets and genre shifts: a listening set, a contact sheet per song, measurements, a speed table.

Usage:
    python benchmarks/styles.py [--out DIR] [--song PATH ...] [--no-demo] [--presets a,b] [--genres a,b]
                                [--amounts 0.5,1.0] [--fresh]
    python benchmarks/styles.py --speed [--speed-song PATH] [--speed-minutes 3]

Listening set (the default): for the demo song and each ``--song`` (default: Kevin MacLeod's
"Vibe Ace" from the shared media), every preset and every genre at each amount, and the
untouched ``base``, rendered through the product's own path (``Renderer`` and tool calls) into
``OUT/<song>/<kind>-<id>-<amount>.wav`` (16-bit, as ``remix render`` writes), each with the
calls that made it beside it (``<name>.json``), so any one can be reproduced with::

    remix render SONG --calls OUT/<song>/style-lofi-1.0.json -o lofi.wav

(``OUT/<song>/README.txt`` names SONG). Renders use a data folder of their own,
``OUT/_data``, so analysis, stem and stage caches never touch the user's; model weights are
still read from the user's models folder, so the separator is the one the product would
pick. Stage outputs cached by an earlier run are cleared first (and again at the end, to
save disk), so every stage time is a computed one; the analysis and stems stay cached
between runs (``--fresh`` clears them too, to time the cold warm-up).

Per song it writes ``contact_sheet.png`` (a mel spectrogram per render on one colour scale,
base first, then each preset and genre at its amounts side by side) and ``measurements.csv``,
and prints the same table:

- ``stage_s``: seconds of the styles or genre stage (computed, not a cache hit), ``total_s``
  every stage that ran (master included), including writing the stage cache;
- ``in_s`` / ``out_s``: durations; ``lufs``: integrated loudness; ``peak`` / ``tp``: sample
  and true peak (dBFS, dBTP), measured on the float render before it is written;
- ``limit``: how many dB the master's limiter took off the peaks (the gain the master needed
  to reach -14 LUFS on the stage output, less its headroom to the -1 dBTP ceiling; measured on
  the same spec with the master off, which only re-reads cached stages);
- ``rolloff``: median 95 % spectral roll-off (Hz, librosa);
- ``bpm``: tempo from librosa's beat tracker with a line fitted through the beats (as the
  shared style check does); ``target`` and ``err``, the error allowing the tracker to lock to
  half or double time: for genres the genre's bpm, for speed presets base's measured bpm
  times the speed (in_s / out_s);
- ``click``: the largest sample-to-sample jump divided by the RMS of the sample-to-sample
  jumps in the 10 ms around it (the jump itself left out), at ``click_at`` seconds. Music
  stays below about 10; a discontinuity (a splice, a clipped edge, a crackle) stands out
  far above. Differences rather than samples, so bright material does not read as a click;
- ``corr``: left/right correlation; ``mono``: loudness change when folded down to mono (LU;
  near 0 for a mix, a few LU down for wide or phasey stereo);
- ``end_db``: RMS level of the last 50 ms (dBFS): far above base's means the render stops
  abruptly (a tail or groove cut at the last sample) where the song itself ends quietly;
- ``dtone``: mean |difference| of the long-term mel spectrum against base (dB, levels
  aligned); ``dtf``: mean |difference| of the mel spectrogram against base, frame by frame
  (dB, only when the lengths agree); a preset near 0 on both does little;
- ``nonfinite``: samples that are NaN or infinite (counted before measuring).

``--speed``: on a 3-minute song (the first ``--song`` looped, or ``--speed-song``), with
analysis and stems cached by a warm-up, renders each preset at amount 1 and each genre at its
default amount and prints the styles/genre stage seconds against the targets (a preset under
3 s, a genre shift under 20 s), the same stage function timed again on its own (``dsp``: no
cache write, best of ``--repeat``); the verdict takes the best time, since a shared machine
only ever makes a run slower. Then the peak memory of the process.

Exit status 1 when any render failed (each failure is printed and the run goes on).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SONG = ROOT.parent / "shared" / "media" / "songs" / "kevin_macleod_vibe_ace.flac"
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "styles"
PRESET_TARGET_S = 3.0
GENRE_TARGET_S = 20.0
TEMPO_TOLERANCE_BPM = 1.0
CLICK_WINDOW_S = 0.010
CLICK_FLOOR = 2e-4  # jumps are measured against at least this RMS (about -74 dBFS), so silence is not a click
SHEET_COLUMNS = 6
TOP_DB = 80.0


@dataclass(frozen=True)
class Job:
    """One render of the listening set: ``kind`` is base, style or genre."""

    kind: str
    id: str
    amount: float
    calls: tuple

    @property
    def name(self) -> str:
        if self.kind == "base":
            return "base"
        amount = f"{self.amount:.1f}" if round(self.amount, 1) == self.amount else f"{self.amount:g}"
        return f"{self.kind}-{self.id}-{amount}"

    @property
    def title(self) -> str:
        return "base" if self.kind == "base" else self.name.replace("-", " ", 1).replace("-", "  ", 1)


def style_job(preset: str, amount: float) -> Job:
    return Job("style", preset, amount, ({"tool": "restyle", "args": {"style": preset, "amount": amount}},))


def genre_job(genre: str, amount: float | None) -> Job:
    args = {"genre": genre} if amount is None else {"genre": genre, "amount": amount}
    return Job("genre", genre, 1.0 if amount is None else amount, ({"tool": "genre_shift", "args": args},))


def listening_jobs(presets: list[str], genres: list[str], amounts: list[float]) -> list[Job]:
    """Base first, then every preset at each amount, then every genre at each amount."""
    jobs = [Job("base", "base", 0.0, ())]
    jobs += [style_job(p, a) for p in presets for a in amounts]
    jobs += [genre_job(g, a) for g in genres for a in amounts]
    return jobs


# ---- settings and renderer ----


def bench_settings(out: Path, fresh: bool = False):
    """Settings from the environment with the data folder moved under ``out`` (models still the user's)."""
    from tools.settings import Settings

    user = Settings.from_env()
    data = out / "_data"
    if fresh and data.exists():
        shutil.rmtree(data)
    settings = user.with_(data_dir=data, models_dir=user.models_path)
    from tools.analyze import prepare_numba_cache

    prepare_numba_cache(settings)
    # Stage outputs from an earlier run would make every stage time a cache hit.
    shutil.rmtree(settings.cache_dir / "stages", ignore_errors=True)
    return settings


def warm_up(renderer, source) -> tuple[float, list[str]]:
    """Separate and analyse the song once (cached), through a render that needs both; returns seconds, notes."""
    from tools.calls import apply_calls

    calls = [
        {"tool": "separate", "args": {"action": "quieter", "stems": ["drums"], "amount_db": 1.0}},
        {"tool": "restyle", "args": {"style": "reverb", "amount": 0.05}},
    ]
    started = time.perf_counter()
    result = renderer.render(source, apply_calls(calls))
    return time.perf_counter() - started, list(result.notes)


def stage_time(result, kind: str) -> tuple[float, str]:
    """Seconds and status of the stage that does the work for ``kind`` (styles or genre)."""
    name = {"style": "styles", "genre": "genre"}.get(kind)
    for run in result.stages:
        if run.name == name:
            return run.seconds, run.status
    return 0.0, "-"


# ---- measurements ----


def tempo_bpm(mono: np.ndarray, sample_rate: int) -> float:
    """Tempo from librosa's beat tracker, a line fitted through the beats (0 when too few beats)."""
    import librosa

    _, beats = librosa.beat.beat_track(y=mono, sr=sample_rate, units="time")
    if len(beats) < 6:
        return 0.0
    beats = beats[1:-1]  # the tracker's first and last beats are the least reliable
    slope = float(np.polyfit(np.arange(len(beats)), beats, 1)[0])
    return 60.0 / slope if slope > 0 else 0.0


def tempo_error(measured: float, target: float) -> float:
    """|measured - target| in bpm, allowing the tracker to lock to half or double time."""
    if measured <= 0:
        return float("inf")
    return min(abs(measured * k - target) for k in (0.5, 1.0, 2.0))


def click_indicator(samples: np.ndarray, sample_rate: int) -> tuple[float, float, float]:
    """The largest sample-to-sample jump against the RMS of the jumps around it.

    Args:
        samples: float array [shape=(channels, frames)].
        sample_rate: frames per second.

    Returns:
        ``(ratio, at_s, jump)``: the largest ratio over channels, where it is, and the jump's size.
    """
    from scipy.ndimage import uniform_filter1d

    window = max(5, int(CLICK_WINDOW_S * sample_rate) | 1)
    centre = 5  # the jump and its neighbours are left out of its own reference
    best = (0.0, 0.0, 0.0)
    for channel in np.asarray(samples, dtype=np.float64):
        jumps = np.abs(np.diff(channel))
        if jumps.size < window:
            continue
        power = jumps**2
        around = uniform_filter1d(power, window, mode="nearest") * window
        around -= uniform_filter1d(power, centre, mode="nearest") * centre
        reference = np.sqrt(np.maximum(around / (window - centre), CLICK_FLOOR**2))
        ratio = jumps / reference
        index = int(np.argmax(ratio))
        if ratio[index] > best[0]:
            best = (float(ratio[index]), (index + 1) / sample_rate, float(jumps[index]))
    return best


def mel_db(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mel power spectrogram in dB (reference 1, not normalised) [shape=(80, frames)]."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=mono, sr=sample_rate, n_fft=2048, hop_length=1024, n_mels=80, fmin=20.0, fmax=sample_rate / 2
    )
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def long_term_db(spectrogram_db: np.ndarray) -> np.ndarray:
    """Long-term mel spectrum (dB) with its mean level removed, so loudness does not count."""
    ltas = 10.0 * np.log10(np.maximum(np.mean(10.0 ** (spectrogram_db / 10.0), axis=1), 1e-12))
    return ltas - ltas.mean()


@dataclass
class Measured:
    """Everything measured on one render; ``spectrogram`` feeds the contact sheet."""

    row: dict
    spectrogram: np.ndarray | None = None
    duration_s: float = 0.0
    sample_rate: int = 44100


def measure(
    audio, job: Job, source_s: float, base: Measured | None, target_bpm: float | None, premaster=None
) -> Measured:
    """The measurements of one render (see the module docstring for each column)."""
    import librosa

    from tools.audio import Audio
    from tools.loudness import integrated_lufs, true_peak_dbfs

    raw = np.asarray(audio.samples)
    nonfinite = int(np.size(raw) - np.count_nonzero(np.isfinite(raw)))
    samples = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    sample_rate = audio.sample_rate
    clean = Audio.trusted(samples, sample_rate)
    mono = samples.mean(axis=0)
    peak = float(np.max(np.abs(samples)))
    ratio, at_s, jump = click_indicator(samples, sample_rate)
    spectrogram = mel_db(mono, sample_rate)
    lufs = integrated_lufs(clean)
    if samples.shape[0] >= 2:
        left, right = samples[0].astype(np.float64), samples[1].astype(np.float64)
        denominator = math.sqrt(float(np.dot(left, left)) * float(np.dot(right, right)))
        corr = float(np.dot(left, right)) / denominator if denominator > 0 else 1.0
        folded = np.repeat(mono[np.newaxis, :], samples.shape[0], axis=0)
        mono_lu = integrated_lufs(Audio.trusted(folded, sample_rate)) - lufs
    else:
        corr, mono_lu = 1.0, 0.0
    tail = samples[:, -max(1, int(0.05 * sample_rate)) :]
    end_db = 10.0 * math.log10(max(float(np.mean(tail.astype(np.float64) ** 2)), 1e-20))
    limit_db = float("nan")
    if premaster is not None:
        pre = Audio.trusted(np.nan_to_num(premaster.samples).astype(np.float32), premaster.sample_rate)
        pre_lufs = integrated_lufs(pre)
        if math.isfinite(pre_lufs):
            limit_db = max(0.0, true_peak_dbfs(pre) + (-14.0 - pre_lufs) - (-1.0))
    dtone = dtf = float("nan")
    if base is not None and base.spectrogram is not None:
        dtone = float(np.mean(np.abs(long_term_db(spectrogram) - long_term_db(base.spectrogram))))
        if abs(spectrogram.shape[1] - base.spectrogram.shape[1]) <= 1:
            n = min(spectrogram.shape[1], base.spectrogram.shape[1])
            floor = max(spectrogram.max(), base.spectrogram.max()) - TOP_DB
            a = np.maximum(spectrogram[:, :n], floor)
            b = np.maximum(base.spectrogram[:, :n], floor)
            dtf = float(np.mean(np.abs(a - b)))
    bpm = tempo_bpm(mono, sample_rate)
    error = tempo_error(bpm, target_bpm) if target_bpm else float("nan")
    rolloff = float(np.median(librosa.feature.spectral_rolloff(y=mono, sr=sample_rate, roll_percent=0.95)))
    row = {
        "name": job.name,
        "kind": job.kind,
        "id": job.id,
        "amount": job.amount,
        "in_s": round(source_s, 3),
        "out_s": round(audio.duration_s, 3),
        "lufs": round(lufs, 2),
        "peak_dbfs": round(20.0 * math.log10(peak), 2) if peak > 0 else float("-inf"),
        "tp_dbtp": round(true_peak_dbfs(clean), 2),
        "limit_db": round(limit_db, 1) if math.isfinite(limit_db) else "",
        "rolloff_hz": round(rolloff),
        "bpm": round(bpm, 2),
        "target_bpm": target_bpm if target_bpm else "",
        "bpm_err": round(error, 2) if target_bpm else "",
        "click": round(ratio, 1),
        "click_at_s": round(at_s, 3),
        "click_jump": round(jump, 4),
        "corr": round(corr, 3),
        "mono_lu": round(mono_lu, 1),
        "end_db": round(end_db, 1),
        "dtone_db": round(dtone, 2) if not math.isnan(dtone) else "",
        "dtf_db": round(dtf, 2) if not math.isnan(dtf) else "",
        "nonfinite": nonfinite,
    }
    return Measured(row, spectrogram, audio.duration_s, sample_rate)


# ---- tables ----

COLUMNS = (  # (csv key, header, width, format)
    ("name", "render", 28, "{}"),
    ("status", "stage", 8, "{}"),
    ("stage_s", "stage_s", 7, "{:.2f}"),
    ("total_s", "total_s", 7, "{:.2f}"),
    ("in_s", "in_s", 6, "{:.1f}"),
    ("out_s", "out_s", 6, "{:.1f}"),
    ("lufs", "lufs", 6, "{:.1f}"),
    ("peak_dbfs", "peak", 6, "{:.2f}"),
    ("tp_dbtp", "tp", 6, "{:.2f}"),
    ("limit_db", "limit", 5, "{:.1f}"),
    ("rolloff_hz", "rolloff", 7, "{:.0f}"),
    ("bpm", "bpm", 6, "{:.1f}"),
    ("target_bpm", "target", 6, "{:.1f}"),
    ("bpm_err", "err", 5, "{:.1f}"),
    ("click", "click", 6, "{:.1f}"),
    ("click_at_s", "at_s", 6, "{:.2f}"),
    ("corr", "corr", 5, "{:.2f}"),
    ("mono_lu", "mono", 5, "{:.1f}"),
    ("end_db", "end_db", 6, "{:.0f}"),
    ("dtone_db", "dtone", 5, "{:.1f}"),
    ("dtf_db", "dtf", 5, "{:.1f}"),
    ("nonfinite", "nan", 3, "{}"),
)
CSV_KEYS = (
    "name", "kind", "id", "amount", "status", "stage_s", "total_s", "in_s", "out_s", "lufs", "peak_dbfs",
    "tp_dbtp", "limit_db", "rolloff_hz", "bpm", "target_bpm", "bpm_err", "click", "click_at_s", "click_jump",
    "corr", "mono_lu", "end_db", "dtone_db", "dtf_db", "nonfinite", "wav", "calls", "error",
)  # fmt: skip


def _cell(value, fmt: str, width: int) -> str:
    if value in ("", None):
        text = ""
    elif isinstance(value, float) and math.isinf(value):
        text = "-inf" if value < 0 else "inf"
    else:
        try:
            text = fmt.format(value)
        except (ValueError, TypeError):
            text = str(value)
    return text.rjust(width) if fmt != "{}" or width < 8 else text.ljust(width)


def table_header() -> str:
    return " ".join(h.ljust(w) if k in ("name", "status") else h.rjust(w) for k, h, w, _ in COLUMNS)


def table_line(row: dict) -> str:
    if row.get("error"):
        return f"{row['name']:<28} FAILED: {row['error']}"
    return " ".join(_cell(row.get(k, ""), f, w) for k, _, w, f in COLUMNS)


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_KEYS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


# ---- contact sheet ----


def contact_sheet(song: str, tiles: list[tuple[str, Measured | None]], path: Path) -> None:
    """A grid of mel spectrograms on one colour scale: base and a legend, then the renders in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spectra = [m.spectrogram for _, m in tiles if m is not None and m.spectrogram is not None]
    if not spectra:
        return
    loudest = max(float(s.max()) for s in spectra)
    vmin, vmax = -TOP_DB, 0.0
    measured_rate = next(m.sample_rate for _, m in tiles if m is not None)
    longest = max(m.duration_s for _, m in tiles if m is not None)
    # Cell 0 is base, cell 1 the legend; the pairs of amounts then start on even columns.
    cells: list[tuple[str, Measured | None] | None] = [tiles[0], None] + list(tiles[1:])
    rows = -(-len(cells) // SHEET_COLUMNS)
    figure, axes = plt.subplots(
        rows, SHEET_COLUMNS, figsize=(SHEET_COLUMNS * 2.2, rows * 1.75), dpi=100, squeeze=False
    )
    image = legend = None
    mel_ticks_hz = (100, 1000, 10000)
    for index, ax in enumerate(axes.flat):
        cell = cells[index] if index < len(cells) else None
        if index == 1:
            ax.axis("off")
            legend_text = (
                f"{song}\nmel spectrograms (mono)\none colour scale: dB\nunder the loudest bin\n"
                f"of the sheet\nx: 0..{longest:.0f} s\ny: 20 Hz..{measured_rate / 2000:.1f} kHz"
            )
            ax.text(0.22, 0.98, legend_text, va="top", fontsize=7, transform=ax.transAxes)
            legend = ax
            continue
        if cell is None:
            ax.axis("off")
            continue
        title, measured = cell
        if measured is None or measured.spectrogram is None:
            ax.set_facecolor("0.85")
            ax.text(0.5, 0.5, "FAILED", ha="center", va="center", color="red", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
            continue
        spectrogram = measured.spectrogram - loudest
        image = ax.imshow(
            spectrogram, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
            extent=(0.0, measured.duration_s, 0, spectrogram.shape[0]), interpolation="nearest",
        )  # fmt: skip
        ax.set_xlim(0.0, longest)
        ax.set_title(title, fontsize=8, pad=2)
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax.set_xticks([])
        ticks = _mel_positions(mel_ticks_hz, measured.sample_rate, spectrogram.shape[0])
        ax.set_yticks(ticks)
        ax.set_yticklabels(["100", "1k", "10k"] if index % SHEET_COLUMNS == 0 else [])
    figure.tight_layout(pad=0.4, h_pad=0.5, w_pad=0.3)
    if image is not None and legend is not None:
        bar = figure.colorbar(image, cax=legend.inset_axes((0.0, 0.05, 0.07, 0.9)))
        bar.ax.tick_params(labelsize=6, length=2, pad=1)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _mel_positions(frequencies_hz, sample_rate: int, n_mels: int) -> list[float]:
    import librosa

    edges = librosa.mel_frequencies(n_mels=n_mels, fmin=20.0, fmax=sample_rate / 2)
    return [float(np.interp(f, edges, np.arange(n_mels))) + 0.5 for f in frequencies_hz]


# ---- listening set ----


@dataclass
class SongReport:
    song: str
    rows: list[dict] = field(default_factory=list)
    failures: int = 0


def song_name(path: Path) -> str:
    stem = path.stem
    return path.parent.name if stem in ("mixture", "mix") else stem


def listening_set(
    song_path: Path, name: str, out: Path, jobs: list[Job], settings, renderer=None, echo=print
) -> SongReport:
    """Render ``jobs`` over one song into ``out/name/``, measure each, write the CSV and contact sheet.

    Args:
        song_path: the song file.
        name: the song's folder name under ``out``.
        out: the output folder.
        jobs: the renders, base first.
        settings: engine settings (their data folder holds the caches).
        renderer: a Renderer to reuse (one is made from ``settings`` otherwise).
        echo: where the table lines go.
    """
    from tools.audio import save
    from tools.calls import apply_calls
    from tools.grooves import GENRES
    from tools.render import Renderer, Source
    from tools.styles import PRESETS

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    report = SongReport(name)
    renderer = renderer or Renderer(settings)
    source = Source.from_path(song_path, settings)
    echo(
        f"\n== {name}: {song_path.name}, {source.audio.duration_s:.1f} s, {source.audio.channels} ch, "
        f"{source.audio.sample_rate} Hz"
    )
    (folder / "README.txt").write_text(
        f"Renders of {song_path.name} by benchmarks/styles.py.\n"
        f"Reproduce one with: remix render {song_path} --calls {folder}/<render>.json -o <render>.wav\n"
        "(the CLI uses your own data folder and settings; this set used REMIX_SEPARATOR="
        f"{settings.separator}, REMIX_GENERATOR={settings.generator})\n"
    )
    try:
        seconds, notes = warm_up(renderer, source)
        echo(f"warm-up (separation + analysis, cached for the renders below): {seconds:.2f} s")
        for note in notes:
            echo(f"  note: {note}")
    except Exception as error:  # the renders below will report what fails
        echo(f"warm-up FAILED: {type(error).__name__}: {error}")
    echo(table_header())
    tiles: list[tuple[str, Measured | None]] = []
    base: Measured | None = None
    seen_notes: set[str] = set()
    for job in jobs:
        wav = folder / f"{job.name}.wav"
        calls_path = folder / f"{job.name}.json"
        row = {"name": job.name, "kind": job.kind, "id": job.id, "amount": job.amount}
        row.update(wav=wav.name, calls=calls_path.name)
        try:
            calls_path.write_text(json.dumps(list(job.calls), indent=2) + "\n")
            spec = apply_calls(list(job.calls))
            result = renderer.render(source, spec)
            stage_s, status = stage_time(result, job.kind)
            target = None
            if job.kind == "genre":
                target = float(spec.genre.bpm or GENRES[spec.genre.name].bpm)
            elif job.kind == "style" and PRESETS[job.id].changes_speed and base is not None and base.row["bpm"] > 0:
                target = round(base.row["bpm"] * source.audio.duration_s / result.audio.duration_s, 1)
            # The same spec with the master off re-reads the cached stages: the master's input.
            premaster = renderer.render(source, spec.update(master=spec.master.model_copy(update={"enabled": False})))
            measured = measure(result.audio, job, source.audio.duration_s, base, target, premaster.audio)
            save(result.audio, wav)
            row.update(measured.row)
            status = status if job.kind != "base" else "-"
            row.update(status=status, stage_s=round(stage_s, 3), total_s=round(result.seconds, 3))
            if job.kind == "base":
                base = measured
            tiles.append((job.title, measured))
            for note in result.notes:
                if note not in seen_notes and not note.startswith("genre "):
                    seen_notes.add(note)
                    echo(f"  note: {note}")
        except Exception as error:  # one failure must not stop the set
            report.failures += 1
            row["error"] = f"{type(error).__name__}: {error}"
            tiles.append((job.title, None))
            traceback.print_exc(limit=3, file=sys.stderr)
        report.rows.append(row)
        echo(table_line(row))
    write_csv(report.rows, folder / "measurements.csv")
    try:
        contact_sheet(name, tiles, folder / "contact_sheet.png")
    except Exception as error:
        report.failures += 1
        echo(f"contact sheet FAILED: {type(error).__name__}: {error}")
    return report


def summary_line(report: SongReport) -> str:
    rows = [r for r in report.rows if not r.get("error")]
    genres = [r for r in rows if r["kind"] == "genre"]
    within = sum(1 for r in genres if isinstance(r["bpm_err"], float) and r["bpm_err"] <= TEMPO_TOLERANCE_BPM)
    worst = max(rows, key=lambda r: r["tp_dbtp"], default=None)
    nonfinite = [r["name"] for r in rows if r["nonfinite"]]
    peak = f"{worst['tp_dbtp']:.2f} dBTP ({worst['name']})" if worst else "n/a"
    return (
        f"{report.song}: {len(report.rows)} renders ({report.failures} failed); genres within "
        f"{TEMPO_TOLERANCE_BPM:g} bpm of target: {within}/{len(genres)}; max true peak after mastering {peak}; "
        f"non-finite: {', '.join(nonfinite) if nonfinite else 'none'}"
    )


def flags(report: SongReport) -> list[str]:
    """Renders that measure oddly: over the ceiling, off the loudness target, tempo misses, clicks, near-silence."""
    rows = [r for r in report.rows if not r.get("error")]
    base = next((r for r in rows if r["kind"] == "base"), None)
    click_limit = max(12.0, 2.0 * base["click"]) if base else 12.0
    out = []
    for r in rows:
        problems = []
        if r["tp_dbtp"] > -0.95:
            problems.append(f"true peak {r['tp_dbtp']:.2f} dBTP over the -1 ceiling")
        if r["lufs"] == float("-inf") or r["lufs"] < -40:
            problems.append(f"near silence ({r['lufs']} LUFS)")
        elif abs(r["lufs"] + 14.0) > 0.5:
            problems.append(f"loudness {r['lufs']:.1f} LUFS, target -14")
        tolerance = TEMPO_TOLERANCE_BPM if r["kind"] == "genre" else 2.0 * TEMPO_TOLERANCE_BPM
        if isinstance(r["bpm_err"], float) and r["bpm_err"] > tolerance:
            problems.append(f"tempo {r['bpm']:.1f} vs {r['target_bpm']:g} (err {r['bpm_err']:.1f})")
        if base and r["kind"] != "base" and r["end_db"] > max(-50.0, base["end_db"] + 20.0):
            problems.append(f"ends abruptly: last 50 ms at {r['end_db']:.0f} dBFS, base {base['end_db']:.0f}")
        if isinstance(r["limit_db"], float) and r["limit_db"] > 6.0:
            problems.append(f"limiter takes {r['limit_db']:.1f} dB off the peaks")
        if r["click"] > click_limit:
            problems.append(f"click {r['click']:.0f} at {r['click_at_s']:.2f} s (jump {r['click_jump']:.3f})")
        if r["nonfinite"]:
            problems.append(f"{r['nonfinite']} non-finite samples")
        if r["kind"] == "style" and isinstance(r["dtone_db"], float) and r["dtone_db"] < 0.5:
            dtf = r["dtf_db"]
            if dtf == "" or dtf < 1.0:
                problems.append(f"little audible change (dtone {r['dtone_db']:.2f} dB, dtf {dtf} dB)")
        if r["mono_lu"] < -3.0 or r["corr"] < 0.0:
            problems.append(f"mono fold-down {r['mono_lu']:+.1f} LU, left/right correlation {r['corr']:.2f}")
        if problems:
            out.append(f"  {r['name']}: " + "; ".join(problems))
    return out


# ---- speed table ----


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def speed_input(args, out: Path, settings) -> Path:
    """The speed song: ``--speed-song``, or the first song looped to ``--speed-minutes``."""
    if args.speed_song:
        return args.speed_song
    from tools.audio import Audio, load, save

    song = (args.song or [DEFAULT_SONG])[0]
    audio = load(song, settings=settings)
    frames = int(args.speed_minutes * 60 * audio.sample_rate)
    looped = np.tile(audio.samples, (1, -(-frames // audio.frames)))[:, :frames]
    path = out / "speed" / f"{song_name(song)}-{args.speed_minutes:g}min.flac"
    if not path.exists():
        save(Audio(looped, audio.sample_rate), path)
    return path


def stage_alone(renderer, source, spec, kind: str) -> float:
    """Seconds of the styles or genre stage's own work on the source (no cache read or write)."""
    context = renderer.context(source)
    started = time.perf_counter()
    if kind == "style":
        from tools.styles import apply_styles, mix_styles

        apply_styles(source.audio, mix_styles(spec), context.style_context(spec, after_tempo=True))
    else:
        from tools.genre import run_genre

        run_genre(source.audio, spec, context)
    return time.perf_counter() - started


def speed_table(args, out: Path, settings, presets: list[str], genres: list[str], echo=print) -> int:
    """Seconds per preset (amount 1) and per genre (default amount) on a long song, warm caches."""
    from tools.calls import apply_calls
    from tools.render import Renderer, Source

    path = speed_input(args, out, settings)
    started = time.perf_counter()
    source = Source.from_path(path, settings)
    echo(f"speed song: {path.name}, {source.audio.duration_s:.1f} s ({time.perf_counter() - started:.2f} s to load)")
    echo(f"cores: {os.cpu_count()}, separator: {settings.separator}, generator: {settings.generator}")
    renderer = Renderer(settings)
    failures = 0
    started = time.perf_counter()
    renderer.render(source, apply_calls([]))
    echo(f"warm-up: base (master only) {time.perf_counter() - started:.2f} s; peak RSS so far {peak_rss_mb():.0f} MB")
    seconds, notes = warm_up(renderer, source)
    echo(
        f"warm-up: separation + analysis (stems and analysis cached from here on) {seconds:.2f} s; "
        f"peak RSS so far {peak_rss_mb():.0f} MB"
    )
    for note in notes:
        echo(f"  note: {note}")
    jobs = [style_job(p, 1.0) for p in presets] + [genre_job(g, None) for g in genres]
    echo(
        "\nstage: the styles or genre stage as the renderer ran it (its cache write included); dsp: the\n"
        f"same stage function run again on its own, without the cache, best of {max(1, args.repeat)}; best: the\n"
        "lower of the two, which the verdict uses (the machine may be shared); master and total as rendered.\n"
    )
    heads = ("stage", "status", "dsp", "best", "master", "total", "target")
    echo(f"{'render':<30} " + " ".join(h.ljust(9) if h == "status" else h.rjust(7) for h in heads) + "  result")
    results: dict[str, list[tuple[str, float]]] = {"style": [], "genre": []}
    for job in jobs:
        target = PRESET_TARGET_S if job.kind == "style" else GENRE_TARGET_S
        try:
            spec = apply_calls(list(job.calls))
            result = renderer.render(source, spec)
            dsp_s = min(stage_alone(renderer, source, spec, job.kind) for _ in range(max(1, args.repeat)))
        except Exception as error:
            failures += 1
            echo(f"{job.name:<30} FAILED: {type(error).__name__}: {error}")
            continue
        seconds, status = stage_time(result, job.kind)
        master_s = next((r.seconds for r in result.stages if r.name == "master"), 0.0)
        best = min(seconds, dsp_s) if status == "computed" else dsp_s  # a cache hit times nothing
        verdict = "pass" if best < target else "FAIL"
        if status != "computed":
            verdict += f" (stage {status}: a cache hit, dsp time used)"
        results[job.kind].append((job.id, best))
        times = " ".join(f"{t:6.2f}s" for t in (dsp_s, best, master_s, result.seconds))
        echo(f"{job.name:<30} {seconds:6.2f}s {status:<9} {times} {'< ' + format(target, 'g') + ' s':>7}  {verdict}")
    echo("")
    for kind, target, label in (("style", PRESET_TARGET_S, "presets"), ("genre", GENRE_TARGET_S, "genre shifts")):
        times = results[kind]
        if not times:
            continue
        slowest = max(times, key=lambda t: t[1])
        passed = [i for i, s in times if s < target]
        failed = [f"{i} ({s:.2f} s)" for i, s in times if s >= target]
        echo(
            f"{label}: target < {target:g} s each on {os.cpu_count()} cores; {len(passed)}/{len(times)} pass; "
            f"slowest {slowest[0]} {slowest[1]:.2f} s; median {np.median([s for _, s in times]):.2f} s"
            + (f"; over target: {', '.join(failed)}" if failed else "")
        )
    echo(f"peak RSS: {peak_rss_mb():.0f} MB")
    return failures


# ---- main ----


def _id_list(text: str | None, known: dict, what: str) -> list[str]:
    if not text:
        return list(known)
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="See the module docstring for the columns.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default benchmarks/out/styles)")
    parser.add_argument("--song", type=Path, action="append", help="a real song (repeatable; default Vibe Ace)")
    parser.add_argument("--no-demo", action="store_true", help="leave the demo song out of the listening set")
    parser.add_argument("--presets", help="comma-separated preset ids (default: all)")
    parser.add_argument("--genres", help="comma-separated genre ids (default: all)")
    parser.add_argument("--amounts", default="0.5,1.0", help="comma-separated amounts (default 0.5,1.0)")
    parser.add_argument("--fresh", action="store_true", help="clear the cached analysis and stems too")
    parser.add_argument("--speed", action="store_true", help="print the speed table instead of the listening set")
    parser.add_argument("--speed-song", type=Path, help="song for the speed table (default: the first song looped)")
    parser.add_argument("--speed-minutes", type=float, default=3.0, help="length of the looped speed song")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each stage on its own in the speed table")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = bench_settings(out, fresh=args.fresh)
    from tools.grooves import GENRES
    from tools.styles import PRESETS

    presets = _id_list(args.presets, PRESETS, "presets")
    genres = _id_list(args.genres, GENRES, "genres")
    if args.speed:
        failures = speed_table(args, out, settings, presets, genres)
        shutil.rmtree(settings.cache_dir / "stages", ignore_errors=True)  # only there to be timed
        return 1 if failures else 0

    amounts = [float(a) for a in args.amounts.split(",") if a.strip()]
    if any(not 0.0 < a <= 1.0 for a in amounts):
        raise SystemExit(f"--amounts must lie in (0, 1], got {args.amounts}")
    songs: list[tuple[str, Path]] = []
    if not args.no_demo:
        from tools.demo import demo_song_path

        songs.append(("demo", demo_song_path(settings.data_dir)))
    for path in args.song or [DEFAULT_SONG]:
        name = song_name(path)
        while name in {n for n, _ in songs}:
            name += "_"
        songs.append((name, path))
    jobs = listening_jobs(presets, genres, amounts)
    started = time.perf_counter()
    reports = []
    for name, path in songs:
        try:
            reports.append(listening_set(path, name, out, jobs, settings))
        except Exception as error:
            print(f"{name}: FAILED: {type(error).__name__}: {error}")
            reports.append(SongReport(name, failures=1))
    shutil.rmtree(settings.cache_dir / "stages", ignore_errors=True)  # only there to be timed
    print(f"\nlistening set in {out} ({time.perf_counter() - started:.0f} s)")
    for report in reports:
        print(summary_line(report))
        for line in flags(report):
            print(line)
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    return 1 if any(r.failures for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
