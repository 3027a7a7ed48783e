"""How well the analysis finds tempo, bars, key and sections.

On the synthesised demo song (known truth): section-boundary precision, recall and F-measure
within 0.5 s and 3 s (one-to-one matching, as mir_eval's ``segment.detection``), tempo error,
key, downbeat accuracy and analysis time per minute of audio. On each song of the shared
media set (no ground truth): tempo, meter, key, sections and time.

Run: ``python benchmarks/structure_accuracy.py [MEDIA_DIR]``; the media folder defaults to
``shared/media`` beside the repository.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.analyze import Analysis, analyze  # noqa: E402
from tools.audio import Audio  # noqa: E402


def match_boundaries(reference: list[float], estimated: list[float], window_s: float) -> tuple[float, float, float]:
    """Precision, recall and F-measure of boundaries matched one-to-one within ``window_s``.

    Pairs are matched greedily by increasing distance, each boundary used at most once (the
    maximum matching of mir_eval for well-separated boundaries).
    """
    pairs = sorted(
        (abs(r - e), i, j) for i, r in enumerate(reference) for j, e in enumerate(estimated) if abs(r - e) <= window_s
    )
    used_ref, used_est = set(), set()
    for _, i, j in pairs:
        if i not in used_ref and j not in used_est:
            used_ref.add(i)
            used_est.add(j)
    hits = len(used_ref)
    precision = hits / len(estimated) if estimated else 1.0
    recall = hits / len(reference) if reference else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f


def timed(audio: Audio) -> tuple[Analysis, float]:
    start = time.perf_counter()
    result = analyze(audio)
    return result, time.perf_counter() - start


def describe_sections(result: Analysis) -> str:
    return ", ".join(f"{s.name} {s.start:.1f}-{s.end:.1f} ({s.energy:.2f})" for s in result.sections)


def load_flac(path: Path) -> Audio:
    import soundfile

    samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return Audio(samples.T, sample_rate)


def demo_report() -> None:
    from tools.demo import make_demo

    song = make_demo()
    analyze(Audio(song.mix.samples[:, : song.mix.sample_rate * 5], song.mix.sample_rate))  # compile numba first
    result, seconds = timed(song.mix)
    print(f"demo song ({song.mix.duration_s:.1f} s, {song.tempo_bpm:g} bpm, {song.key} {song.mode}, "
          f"{song.beats_per_bar}/4)")  # fmt: skip
    print(f"  tempo {result.tempo:.2f} bpm (error {result.tempo - song.tempo_bpm:+.2f} bpm), "
          f"meter {result.beats_per_bar}/4, key {result.key} {result.mode} "
          f"({'correct' if (result.key, result.mode) == (song.key, song.mode) else 'WRONG'}, "
          f"confidence {result.key_confidence:.2f})")  # fmt: skip
    true_downbeats = np.array(song.downbeats)
    estimated = np.array(result.downbeats)
    errors = np.array([np.abs(estimated - t).min() for t in true_downbeats]) if estimated.size else np.full(1, np.inf)
    print(f"  downbeats: {np.mean(errors <= 0.07):.2f} of true bars within 70 ms "
          f"(median error {1000 * np.median(errors):.0f} ms); {len(estimated)} estimated, {len(true_downbeats)} true")
    reference = [s.start for s in song.sections[1:]]
    boundaries = [s.start for s in result.sections[1:]]
    for window_s in (0.5, 3.0):
        p, r, f = match_boundaries(reference, boundaries, window_s)
        print(f"  boundaries within {window_s:g} s: precision {p:.2f} recall {r:.2f} F {f:.2f}")
    print("  true:      " + ", ".join(f"{s.label} {s.ordinal} {s.start:.1f}-{s.end:.1f}" for s in song.sections))
    print("  estimated: " + describe_sections(result))
    print(f"  analysis time {seconds:.2f} s = {60.0 * seconds / song.mix.duration_s:.2f} s per minute of audio")


def media_report(media: Path) -> None:
    paths = sorted((media / "songs").glob("*.flac")) + sorted((media / "stems").glob("*/mixture.flac"))
    if not paths:
        print(f"no songs under {media}")
        return
    for path in paths:
        audio = load_flac(path)
        result, seconds = timed(audio)
        name = path.parent.name if path.name == "mixture.flac" else path.stem
        print(f"{name} ({audio.duration_s:.1f} s): tempo {result.tempo:.2f} bpm, {result.beats_per_bar}/4, "
              f"key {result.key} {result.mode} ({result.key_confidence:.2f}), {result.loudness_lufs} LUFS, "
              f"{seconds:.2f} s")  # fmt: skip
        print("  " + describe_sections(result))


def main(argv: list[str]) -> None:
    media = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "media"
    demo_report()
    print()
    media_report(media)


if __name__ == "__main__":
    main(sys.argv)
