"""Rearrangement speed on a cached 3-minute song, and section-boundary accuracy on known forms.

Usage:
    python benchmarks/rearrange.py [--song SONG] [--minutes 3]

Speed: the song's analysis (and stems) are cached first, as they are once a listener has
loaded a song; then every kind of rearrangement is rendered (arrangement stage + master),
once with a warm renderer (the studio) and once with a fresh renderer that reads the
analysis from the disk cache (a new `remix render`). Target: under 2 s each.

Accuracy: section boundaries found by the analysis against the demo song's known form,
hit rates within 0.5 s and 3 s (precision and recall), as in MIREX structure evaluation.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scratch import scratch_dir  # noqa: E402 - after the path is set

from tools.audio import Audio, load  # noqa: E402
from tools.calls import apply_calls  # noqa: E402
from tools.render import Renderer, Source  # noqa: E402
from tools.settings import Settings  # noqa: E402

OPERATIONS = {
    "remove verse 2": [{"action": "remove", "section": "verse 2"}],
    "repeat chorus x2": [{"action": "repeat", "section": "chorus", "times": 2}],
    "move bridge to start": [{"action": "move", "section": "bridge", "position": "start"}],
    "keep only choruses": [{"action": "keep_only", "section": "chorus"}],
    "shorten to 30 s": [{"action": "shorten", "seconds": 30}],
    "extend to 5 min": [{"action": "extend", "seconds": 300}],
    "fade out 5 s": [{"action": "fade_out", "seconds": 5}],
    "skip intro, loop chorus": [{"action": "remove", "section": "intro"}, {"action": "repeat", "section": "chorus 1"}],
}


def boundary_hits(found: list[float], truth: list[float], window: float) -> tuple[float, float]:
    """Precision and recall of inner boundaries within ``window`` seconds (each truth matched once)."""
    found, truth = sorted(found), sorted(truth)
    used: set[int] = set()
    hits = 0
    for t in truth:
        near = [i for i, f in enumerate(found) if abs(f - t) <= window and i not in used]
        if near:
            used.add(min(near, key=lambda i: abs(found[i] - t)))
            hits += 1
    return (hits / len(found) if found else 0.0), (hits / len(truth) if truth else 0.0)


def three_minute_demo() -> Audio:
    from tools.demo import make_demo

    song = make_demo()
    samples = np.concatenate([song.mix.samples, song.mix.samples], axis=1)[:, : 180 * 44100]
    return Audio(np.ascontiguousarray(samples), 44100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--song", type=Path, help="a song to rearrange (default: the demo song, twice, cut to 3 min)")
    parser.add_argument("--minutes", type=float, default=3.0, help="loop or cut --song to this length")
    args = parser.parse_args()

    from tools.demo import make_demo

    demo = make_demo()
    data = scratch_dir()
    settings = Settings(data_dir=data)

    # Accuracy on the demo's known form.
    analysis = Renderer(settings, disk=False).context(Source.from_audio(demo.mix)).analysis
    truth = [s.start for s in demo.sections[1:]]
    found = [s.start for s in analysis.sections[1:]]
    print(f"demo song: {len(analysis.sections)} sections found, {len(demo.sections)} written: {', '.join(analysis.section_names())}")
    for window in (0.5, 3.0):
        p, r = boundary_hits(found, truth, window)
        print(f"  boundaries within {window:g} s: precision {p:.2f}, recall {r:.2f}")

    if args.song:
        audio = load(args.song)
        want = int(args.minutes * 60 * audio.sample_rate)
        reps = -(-want // audio.frames)
        audio = Audio(np.ascontiguousarray(np.tile(audio.samples, (1, reps))[:, :want]), audio.sample_rate)
    else:
        audio = three_minute_demo()
    source = Source.from_audio(audio)
    warm = Renderer(settings)
    started = time.perf_counter()
    warm.render(source, apply_calls([]))
    analysis = warm.context(source).analysis
    _ = warm.context(source).beats
    print(f"\n{audio.duration_s:.0f} s song: analysis and first render {time.perf_counter() - started:.1f} s (cached from here on)")
    print(f"sections: {', '.join(analysis.section_names())}")
    print(f"\n{'rearrangement':28s} {'warm':>7s} {'fresh':>7s} {'length':>8s}  target < 2 s")
    worst = 0.0
    for name, calls in OPERATIONS.items():
        try:
            spec = apply_calls([{"tool": "rearrange", "args": a} for a in calls], analysis=analysis)
        except Exception as error:  # a section this song does not have
            print(f"{name:28s} skipped: {error}")
            continue
        t0 = time.perf_counter()
        result = warm.render(source, spec)
        t_warm = time.perf_counter() - t0
        fresh = Renderer(settings, disk=False)  # a new process: analysis from the disk cache, no stage cache
        t0 = time.perf_counter()
        fresh.render(source, spec)
        t_fresh = time.perf_counter() - t0
        worst = max(worst, t_warm, t_fresh)
        print(f"{name:28s} {t_warm:6.2f}s {t_fresh:6.2f}s {result.audio.duration_s:7.1f}s  {'pass' if max(t_warm, t_fresh) < 2 else 'FAIL'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nslowest {worst:.2f} s; peak RSS {peak:.0f} MB")
    return 0 if worst < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
