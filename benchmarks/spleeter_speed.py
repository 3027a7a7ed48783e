"""Spleeter vocals benchmark: speed and peak memory per song length, and vocal SDR gains.

Usage: python benchmarks/spleeter_speed.py [--minutes 1 3 10] [--models-dir DIR]

Speed: a real song from the shared media set, tiled to each length (stereo, 44.1 kHz), is
separated in a fresh subprocess per (length, precision), so each peak RSS (ru_maxrss) is
that case's own. Seconds per minute of audio exclude loading the weights.

Quality (in float32, so that the numbers do not depend on the bf16 check): the vocal SDR
gain over the mixture-as-estimate baseline on every public multitrack (SDR over the whole
excerpt, all channels) and on the demo song; and on the full songs, which have no vocals,
the level of the vocal estimate relative to the song (lower is better: what an instrumental
loses to the vocals).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MEDIA = ROOT.parent / "shared" / "media"


def sdr(reference, estimate) -> float:
    import numpy as np

    return float(10 * np.log10((np.sum(reference**2) + 1e-9) / (np.sum((reference - estimate) ** 2) + 1e-9)))


def run_case(minutes: float, precision: str, models_dir: Path) -> dict:
    """One timing case, in this process: prints and returns a JSON row."""
    import numpy as np

    from tools.audio import Audio, load
    from tools.separators.spleeter import SpleeterVocals

    songs = sorted((MEDIA / "songs").glob("*.flac"))
    source = load(songs[0]) if songs else load(sorted((MEDIA / "stems").glob("*/mixture.flac"))[0])
    source = source.resample(44_100).to_channels(2)
    frames = int(minutes * 60 * 44_100)
    samples = np.tile(source.samples, (1, -(-frames // source.frames)))[:, :frames]
    audio = Audio(np.ascontiguousarray(samples), 44_100)
    del samples, source
    separator = SpleeterVocals(models_dir, precision=precision)
    used = separator.precision_used  # loads the weights (and runs the bf16 check) untimed
    start = time.perf_counter()
    separator.separate(audio)
    seconds = time.perf_counter() - start
    row = {
        "minutes": minutes,
        "precision": used,
        "seconds": round(seconds, 2),
        "seconds_per_minute": round(seconds / minutes, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
    }
    print(json.dumps(row))
    return row


def quality(models_dir: Path) -> None:
    import numpy as np
    import soundfile as sf

    from tools.audio import Audio, load
    from tools.demo import make_demo
    from tools.separators.spleeter import SpleeterVocals

    separator = SpleeterVocals(models_dir, precision="fp32")
    gains = []
    for folder in sorted((MEDIA / "stems").glob("*/")):
        mix = np.ascontiguousarray(sf.read(folder / "mixture.flac", always_2d=True, dtype="float32")[0].T)
        truth = sf.read(folder / "vocals.flac", always_2d=True, dtype="float32")[0].T
        vocals, _ = separator.separate(Audio(mix, 44_100))
        gains.append(sdr(truth, vocals.samples) - sdr(truth, mix))
        print(f"{folder.name:28s} vocals SDR {sdr(truth, vocals.samples):6.2f} dB  gain {gains[-1]:+6.2f} dB")
    if gains:
        print(f"{'mean':28s} gain {np.mean(gains):+6.2f} dB  ({separator.precision_used})")
    demo = make_demo()
    truth = demo.stems["vocals"].samples
    vocals, _ = separator.separate(demo.mix)
    print(
        f"{'demo song (not tuned on)':28s} vocals SDR {sdr(truth, vocals.samples):6.2f} dB  "
        f"gain {sdr(truth, vocals.samples) - sdr(truth, demo.mix.samples):+6.2f} dB"
    )
    for path in sorted((MEDIA / "songs").glob("*.flac")):
        song = load(path).resample(44_100).to_channels(2)
        vocals, _ = separator.separate(song)
        vocal_energy = np.sum(vocals.samples.astype(np.float64) ** 2)
        level_db = 10 * np.log10(vocal_energy / np.sum(song.samples.astype(np.float64) ** 2))
        print(f"{path.stem:32s} instrumental: vocal estimate at {level_db:6.1f} dB of the song")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 3, 10])
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--case", nargs=2, metavar=("MINUTES", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.models_dir is None:
        from tools.settings import get_settings

        args.models_dir = get_settings().models_path
    if args.case:
        run_case(float(args.case[0]), args.case[1], args.models_dir)
        return
    from tools.separators.spleeter import spleeter_weights

    spleeter_weights(args.models_dir)  # convert once, outside the timed cases
    for precision in ("fp32", "bf16"):
        for minutes in args.minutes:
            cmd = [sys.executable, __file__, "--models-dir", str(args.models_dir), "--case", str(minutes), precision]
            subprocess.run(cmd, check=True)
    if (MEDIA / "stems").is_dir():
        quality(args.models_dir)


if __name__ == "__main__":
    main()
