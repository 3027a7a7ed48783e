"""Speed and memory of the studio's picture of a version (ui/picture.py).

Usage:
    python benchmarks/picture.py [--synthetic] [--repeats 7] [--out FOLDER]

Draws a 3-minute stereo 44.1 kHz song (the demo song twice, cut to 3 minutes, with its true
sections, beats and bars; or, with --synthetic, a synthetic song that takes no time to build)
and a 10-second one, each several times after one warm-up picture (imports, fonts), and
prints seconds per picture (median and best wall-clock, and CPU time, which a busy
machine inflates less), the process's peak resident memory from
``resource.getrusage`` before and after drawing, and the most memory one picture allocates
(numpy and Python, traced). Target: well under 0.5 s for the 3-minute song.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.audio import Audio  # noqa: E402
from ui.picture import draw_song  # noqa: E402

SR = 44100


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def demo_song(seconds: float) -> tuple[Audio, list, list[float], list[float], str]:
    """The demo song, looped and cut to ``seconds``, with its sections, beats and bars."""
    from tools.demo import make_demo

    song = make_demo(SR)
    length = song.duration_s
    loops = int(np.ceil(seconds / length))
    samples = np.concatenate([song.mix.samples] * loops, axis=1)[:, : int(seconds * SR)]
    counts: dict[str, int] = {}
    sections, beats, downbeats = [], [], []
    for loop in range(loops):
        offset = loop * length
        for section in song.sections:
            if section.start + offset >= seconds:
                break
            counts[section.label] = counts.get(section.label, 0) + 1
            name = f"{section.label} {counts[section.label]}"
            sections.append((name, section.start + offset, min(seconds, section.end + offset)))
        beats += [t + offset for t in song.beats if t + offset < seconds]
        downbeats += [t + offset for t in song.downbeats if t + offset < seconds]
    return Audio(np.ascontiguousarray(samples), SR), sections, beats, downbeats, f"{song.title} (demo, looped)"


def synthetic_song(seconds: float) -> tuple[Audio, list, list[float], list[float], str]:
    """Noise-and-tone 'sections' of 16 s at 120 bpm: kick-like bursts on the beat, a chord."""
    rng = np.random.default_rng(0)
    frames = int(seconds * SR)
    t = (np.arange(frames) / SR).astype(np.float32)
    beat = 0.5
    mono = 0.5 * np.sin(np.float32(2 * np.pi * 55) * t) * np.exp(-((t % beat) / beat) * np.float32(12))
    for freq in (220.0, 277.2, 329.6):
        mono += 0.1 * np.sin(np.float32(2 * np.pi * freq) * t)
    mono += rng.standard_normal(frames, dtype=np.float32) * np.exp(-((t * 4) % 1) * np.float32(30)) * np.float32(0.2)
    samples = np.stack([mono, np.roll(mono, 7)]) * np.float32(0.7)
    names = ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"]
    counts: dict[str, int] = {}
    sections = []
    for i, start in enumerate(np.arange(0.0, seconds, 16.0)):
        label = names[i % len(names)]
        counts[label] = counts.get(label, 0) + 1
        sections.append((f"{label} {counts[label]}", float(start), float(min(seconds, start + 16.0))))
    beats = list(np.arange(0.0, seconds, beat))
    return Audio(samples, SR), sections, beats, beats[::4], "Synthetic song"


def time_pictures(song, out: Path, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (all threads of this process) of each picture."""
    audio, sections, beats, downbeats, title = song
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        draw_song(audio, out, sections, beats, downbeats, title)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def traced_peak_mb(song, out: Path) -> float:
    audio, sections, beats, downbeats, title = song
    tracemalloc.start()
    try:
        draw_song(audio, out, sections, beats, downbeats, title)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="a synthetic song instead of the demo song")
    parser.add_argument("--repeats", type=int, default=7, help="timed pictures per song")
    parser.add_argument("--out", type=Path, help="folder for the pictures (default: a temporary one)")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="remix-picture-"))
    make = synthetic_song if args.synthetic else demo_song
    start = time.perf_counter()
    songs = {"3-minute": make(180.0), "10-second": make(10.0)}
    kind = "synthetic" if args.synthetic else "demo song"
    print(f"songs built in {time.perf_counter() - start:.1f} s ({kind}, stereo 44.1 kHz)")

    rss_before = peak_rss_mb()
    audio, sections, beats, downbeats, title = songs["10-second"]
    start = time.perf_counter()
    draw_song(audio, out / "warm-up.png", sections, beats, downbeats, title)
    print(f"first picture (imports, fonts): {time.perf_counter() - start:.2f} s")

    for name, song in songs.items():
        target = out / f"{name}.png"
        wall, cpu = time_pictures(song, target, args.repeats)
        print(
            f"{name} song ({song[0].duration_s:.0f} s, {len(song[1])} sections, {len(song[2])} beats): "
            f"median {statistics.median(wall):.3f} s, best {min(wall):.3f} s per picture over {len(wall)} "
            f"(CPU median {statistics.median(cpu):.3f} s); {target.stat().st_size / 1024:.0f} KiB PNG"
        )
    rss_after = peak_rss_mb()
    print(f"peak resident memory: {rss_before:.0f} MB before drawing, {rss_after:.0f} MB after")
    traced = traced_peak_mb(songs["3-minute"], out / "traced.png")
    print(f"most memory one 3-minute picture allocates (traced): {traced:.0f} MB")
    print(f"pictures in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
