"""Engine benchmark: seconds per stage on a 3-minute stereo 44.1 kHz song, cache hits, peak memory.

Usage: python benchmarks/engine.py [--song PATH] [--minutes 3]

Without --song the demo song is repeated to the length asked for. Every figure comes from
this process: a full render, then re-renders after changing one late section, so the ratios
compare runs on the same machine in the same state.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scratch import scratch_dir  # noqa: E402 - after the path is set


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_demo_input(path: Path, minutes: float) -> int:
    import numpy as np

    from tools.audio import Audio, save
    from tools.demo import make_demo

    mix = make_demo().mix
    frames = int(minutes * 60 * mix.sample_rate)
    save(Audio(np.tile(mix.samples, (1, -(-frames // mix.frames)))[:, :frames], mix.sample_rate), path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--song", type=Path)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--write-demo", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write_demo:
        return write_demo_input(args.write_demo, args.minutes)

    import numpy as np

    from tools.analyze import analyze, analyze_cached, prepare_numba_cache
    from tools.audio import Audio, load, save
    from tools.render import Renderer, Source
    from tools.settings import Settings
    from tools.spec import Arrangement, MasterSettings, PitchSettings, RemixSpec, TempoSettings

    data = scratch_dir()
    settings = Settings(data_dir=data)
    prepare_numba_cache(settings)
    baseline_rss = peak_rss_mb()

    path = data / "input.flac"
    if args.song:
        audio = load(args.song)
        frames = int(args.minutes * 60 * audio.sample_rate)
        audio = Audio(np.tile(audio.samples, (1, -(-frames // audio.frames)))[:, :frames], audio.sample_rate)
        save(audio, path)
    else:
        # Synthesised in a child process, so its memory does not count against the engine's.
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-demo", str(path), "--minutes", str(args.minutes)], check=True)
        print(f"demo song synthesised and written in {time.perf_counter() - started:.2f} s (separate process)")
    audio = load(path)
    minutes = audio.duration_s / 60
    print(f"input: {audio.duration_s:.1f} s, {audio.channels} ch, {audio.sample_rate} Hz")

    def timed(label, fn):
        started = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - started
        print(f"{label:<44} {seconds:7.2f} s   {seconds / minutes:6.2f} s per minute of audio")
        return value, seconds

    source, _ = timed("load + hash (flac)", lambda: Source.from_path(path, settings))
    timed("analysis, cold (numba compiles on a new machine)", lambda: analyze_cached(source.audio, source.key, settings))
    timed("analysis, warm kernels, result not cached", lambda: analyze(source.audio))
    timed("analysis, cached result", lambda: analyze_cached(source.audio, source.key, settings))

    renderer = Renderer(settings)
    _, plain = timed("render {} (master only)", lambda: renderer.render(source, RemixSpec()))
    spec = RemixSpec(tempo=TempoSettings(ratio=1.1), pitch=PitchSettings(semitones=-2))
    result, full = timed("render tempo +10 %, pitch -2 (full)", lambda: renderer.render(source, spec))
    for run in result.stages:
        if run.status != "skipped":
            print(f"    stage {run.name:<14} {run.status:<9} {run.seconds:6.2f} s")
    _, tempo_only = timed("render tempo to 132 bpm only", lambda: renderer.render(source, RemixSpec(tempo=TempoSettings(bpm=132))))
    _, master_hit = timed(
        "re-render, master section changed",
        lambda: renderer.render(source, spec.update(master=MasterSettings(target_lufs=-16))),
    )
    _, late_hit = timed(
        "re-render, fades section changed",
        lambda: renderer.render(source, spec.update(arrangement=Arrangement(fade_out_s=6))),
    )
    fresh = Renderer(settings)
    _, disk_hit = timed("re-render in a new renderer (disk cache)", lambda: fresh.render(source, spec))
    print(f"cache-hit ratio (master change / full render): {master_hit / full:.3f}")
    print(f"cache-hit ratio (fades change / full render):  {late_hit / full:.3f}")
    print(f"peak memory: {peak_rss_mb():.0f} MB (after imports and setup: {baseline_rss:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
