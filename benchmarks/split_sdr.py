"""Signal-processing separation benchmark: SDR gains on the public multitracks, speed, memory.

Prints, per track and as a mean, the SDR of drums / bass / other from
``split_accompaniment`` next to the mixture-as-estimate baseline, for an accompaniment made
with the true vocals (an upper bound) and with a degraded vocal estimate
(``0.9 * vocals + 0.05 * mixture``); the same for all four stems of ``dsp_separate``; the
held-out demo song; then seconds per minute of audio and peak RSS for 3- and 10-minute
stereo inputs (a real song tiled), each measured in a fresh subprocess.

Usage: python benchmarks/split_sdr.py [--media DIR] [--no-demo] [--no-speed]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.audio import Audio  # noqa: E402
from tools.separators.dsp import dsp_separate  # noqa: E402
from tools.separators.split import split_accompaniment  # noqa: E402

DEFAULT_MEDIA = ROOT.parent / "shared" / "media"


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Whole-excerpt SDR in dB over all samples and channels."""
    reference = reference.astype(np.float64)
    return float(10 * np.log10((np.sum(reference**2) + 1e-9) / (np.sum((reference - estimate) ** 2) + 1e-9)))


def load_songs(stems_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    import soundfile as sf

    songs = {}
    for folder in sorted(p for p in stems_dir.iterdir() if (p / "mixture.flac").is_file()):
        songs[folder.name] = {
            name: sf.read(folder / f"{name}.flac", dtype="float32", always_2d=True)[0].T
            for name in ("mixture", "vocals", "drums", "bass", "other")
        }
    return songs


def table(title: str, rows: dict[str, dict[str, tuple[float, float]]]) -> None:
    """rows: track -> stem -> (sdr_db, baseline_db)."""
    stems = list(next(iter(rows.values())))
    print(f"\n{title}")
    print(f"{'track':28s} " + " ".join(f"{s + ' SDR/base/gain':>24s}" for s in stems))
    for track, values in rows.items():
        cells = " ".join(f"{values[s][0]:7.2f} {values[s][1]:7.2f} {values[s][0] - values[s][1]:+7.2f} " for s in stems)
        print(f"{track:28s} {cells}")
    mean = {s: [np.mean([v[s][i] for v in rows.values()]) for i in (0, 1)] for s in stems}
    cells = " ".join(f"{mean[s][0]:7.2f} {mean[s][1]:7.2f} {mean[s][0] - mean[s][1]:+7.2f} " for s in stems)
    print(f"{'MEAN':28s} {cells}")


def score(truth: dict[str, np.ndarray], estimates: dict[str, Audio]) -> dict[str, tuple[float, float]]:
    return {
        name: (sdr(truth[name], est.samples), sdr(truth[name], truth["mixture"])) for name, est in estimates.items()
    }


def separation_tables(songs: dict[str, dict[str, np.ndarray]], sample_rate: int) -> None:
    accompaniments = {
        "accompaniment = mixture - true vocals": lambda s: s["mixture"] - s["vocals"],
        "accompaniment = mixture - (0.9 vocals + 0.05 mixture)": lambda s: s["mixture"]
        - (0.9 * s["vocals"] + 0.05 * s["mixture"]),
    }
    for title, make in accompaniments.items():
        rows = {
            name: score(song, split_accompaniment(Audio(make(song), sample_rate), Audio(song["mixture"], sample_rate)))
            for name, song in songs.items()
        }
        table(f"split_accompaniment, {title}", rows)
    rows = {name: score(song, dsp_separate(Audio(song["mixture"], sample_rate))) for name, song in songs.items()}
    table("dsp_separate (no learned weights), all four stems", rows)


def demo_tables() -> None:
    from tools.demo import make_demo

    demo = make_demo()
    truth = {name: demo.stems[name].samples for name in ("vocals", "drums", "bass", "other")}
    truth["mixture"] = demo.mix.samples
    accompaniment = demo.mix.replace(demo.mix.samples - truth["vocals"])
    table("demo song (held out), true-vocal accompaniment", {"demo": score(truth, split_accompaniment(accompaniment))})
    table("demo song (held out), dsp_separate", {"demo": score(truth, dsp_separate(demo.mix))})


_SPEED_CHILD = """
import json, resource, sys, time
import numpy as np, soundfile as sf
sys.path.insert(0, {root!r})
from tools.audio import Audio
from tools.separators.split import split_accompaniment
from tools.separators.dsp import dsp_separate
x = sf.read({path!r}, dtype="float32", always_2d=True)[0].T
frames = int({minutes} * 60 * 44100)
x = np.ascontiguousarray(np.tile(x, (1, frames // x.shape[1] + 1))[:, :frames])
split_accompaniment(Audio(x[:, : 44100 * 3], 44100))  # compile/load kernels outside the timing
start = time.perf_counter()
{call}(Audio(x, 44100))
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def speed(song_path: Path) -> None:
    print("\nspeed and memory (stereo 44.1 kHz, a real song tiled; fresh subprocess each)")
    for call in ("split_accompaniment", "dsp_separate"):
        for minutes in (3, 10):
            code = _SPEED_CHILD.format(root=str(ROOT), path=str(song_path), minutes=minutes, call=call)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{call:20s} {minutes:3d} min: {result['seconds']:6.1f} s "
                f"({result['seconds'] / minutes:.2f} s per minute), peak RSS {result['peak_rss_mb']:.0f} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    songs = load_songs(args.media / "stems")
    separation_tables(songs, 44100)
    if not args.no_demo:
        demo_tables()
    if not args.no_speed:
        speed(args.media / "stems" / next(iter(songs)) / "mixture.flac")


if __name__ == "__main__":
    main()
