"""Voice notes: word error rate, plan agreement with the typed text, and seconds per note.

Usage:
    python benchmarks/voice.py [--count 40] [--prompt default|none|TEXT] [--out DIR] [--show]

Sets:
    shared    the synthetic spoken requests of ``../shared/media/speech`` (req01..req06)
    espeak    our own: requests picked across the kinds of ``tests/data/planner_cases.jsonl``
              (no typos, no empty or off-topic lines, no context turns), spoken by espeak-ng
              in several voices (en-us, en-gb, en-us+f3, en-us+m3, en-gb-x-rp, en-gb-scotland)
              at 130-190 words a minute; written to ``benchmarks/out/voice/`` (git-ignored).
              Skipped when espeak-ng is not installed.
    real      ``real_jfk_inaugural_excerpt.flac`` (its text in transcripts.tsv)

For each note: WER (jiwer) between the typed text and the transcript, both normalised the
same way (lower case, the remix spellings of ``assistant.voice.normalise``, no punctuation);
whether the offline planner gives the voiced text the same calls as the typed text; and the
seconds spent transcribing (model warm; the first load is reported apart).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant import voice  # noqa: E402
from assistant.offline import OfflinePlanner  # noqa: E402
from assistant.planner import PlanContext  # noqa: E402
from tools.settings import get_settings  # noqa: E402

SPEECH = ROOT.parent / "shared" / "media" / "speech"
CASES = ROOT / "tests" / "data" / "planner_cases.jsonl"
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb-x-rp", "en-gb-scotland", "en-us+f2")
SPEEDS = (130, 145, 160, 175, 190)
SKIP_KINDS = {"typo", "offtopic", "hostile", "context", "unsupported"}


def _words(text: str) -> str:
    text = voice.normalise(text)
    text = re.sub(r"[^\w\s'%-]", " ", text).replace("-", " ")
    return " ".join(text.split())


def _pick(count: int) -> list[str]:
    """Requests spread over the kinds and the file: every n-th eligible case, no duplicates."""
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    eligible = [
        c["request"].strip()
        for c in cases
        if c.get("kind") not in SKIP_KINDS and not c.get("context") and len(c["request"].split()) >= 2
    ]
    eligible = list(dict.fromkeys(eligible))
    step = max(1, len(eligible) // count)
    return eligible[::step][:count]


def _espeak_set(count: int, out: Path) -> list[tuple[Path, str, str]]:
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed: the espeak set is skipped (apt-get install espeak-ng)", file=sys.stderr)
        return []
    out.mkdir(parents=True, exist_ok=True)
    notes = []
    for i, text in enumerate(_pick(count)):
        voice_name, speed = VOICES[i % len(VOICES)], SPEEDS[(i * 3) % len(SPEEDS)]
        path = out / f"note{i:02d}.wav"
        subprocess.run(["espeak-ng", "-v", voice_name, "-s", str(speed), "-w", str(path), text], check=True)
        notes.append((path, text, f"{voice_name}@{speed}"))
    return notes


def _shared_set() -> tuple[list, list]:
    rows = [line.split("\t", 1) for line in (SPEECH / "transcripts.tsv").read_text().splitlines() if "\t" in line]
    requests = [(SPEECH / f, text, "shared") for f, text in rows if f.startswith("req")]
    real = [(SPEECH / f, text, "real") for f, text in rows if f.startswith("real_jfk")]
    return requests, real


def run_set(name, notes, planner, settings, prompt, show) -> dict:
    import jiwer

    refs, hyps, same, seconds, durations, rows = [], [], 0, [], [], []
    for path, typed, tag in notes:
        started = time.perf_counter()
        try:
            result = voice.transcribe_offline(path, settings, prompt=prompt)
            heard, normalised = result.text, result.normalised
            durations.append(result.seconds)
        except Exception as error:  # a failed note counts as a miss with nothing heard
            heard, normalised = f"<{type(error).__name__}: {error}>", ""
        seconds.append(time.perf_counter() - started)
        typed_calls = planner(typed, PlanContext()).to_json()["calls"]
        voiced_calls = planner(normalised, PlanContext()).to_json()["calls"] if normalised else None
        agree = voiced_calls == typed_calls
        same += agree
        refs.append(_words(typed))
        hyps.append(_words(heard) if normalised else "")
        rows.append({"file": path.name, "voice": tag, "typed": typed, "heard": heard, "same_plan": agree})
        if show and (not agree or refs[-1] != hyps[-1]):
            print(f"  [{name}] {tag:>20} {'ok ' if agree else 'DIFF'} {typed!r} -> {heard!r}")
    wer = jiwer.wer(refs, [h or "<empty>" for h in hyps]) if refs else float("nan")
    return {
        "set": name,
        "notes": len(notes),
        "wer": round(wer, 4),
        "same_plan": same,
        "same_plan_share": round(same / len(notes), 4) if notes else None,
        "seconds_per_note_median": round(statistics.median(seconds), 3) if seconds else None,
        "seconds_per_note_mean": round(statistics.fmean(seconds), 3) if seconds else None,
        "audio_seconds_mean": round(statistics.fmean(durations), 3) if durations else None,
        "rows": rows,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="spoken requests in the espeak set (default 40)")
    parser.add_argument("--prompt", default="default", help="'default' (the remix prompt), 'none', or a prompt")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "voice")
    parser.add_argument("--show", action="store_true", help="print the notes heard wrong or planned differently")
    args = parser.parse_args(argv)
    prompt = {"default": "", "none": None}.get(args.prompt, args.prompt)

    settings = get_settings()
    started = time.perf_counter()
    voice.assemble_model(settings=settings)
    assembled = time.perf_counter() - started
    started = time.perf_counter()
    voice._model(settings)
    loaded = time.perf_counter() - started
    planner = OfflinePlanner(settings).plan
    planner("warm up", PlanContext())

    shared, real = _shared_set()
    espeak = _espeak_set(args.count, args.out / "espeak")
    results = [run_set(name, notes, planner, settings, prompt, args.show)
               for name, notes in (("shared", shared), ("espeak", espeak), ("real", real)) if notes]  # fmt: skip

    print(f"prompt: {args.prompt}; model: assemble/verify {assembled:.2f} s, load {loaded:.2f} s (2 threads, int8)")
    print(f"{'set':<8} {'notes':>5} {'WER':>7} {'same plan':>12} {'s/note med':>11} {'s/note mean':>12} {'audio s':>8}")
    for r in results:
        share = f"{r['same_plan']}/{r['notes']} {100 * r['same_plan_share']:.0f}%"
        print(f"{r['set']:<8} {r['notes']:>5} {r['wer']:>7.3f} {share:>12} {r['seconds_per_note_median']:>11.2f} "
              f"{r['seconds_per_note_mean']:>12.2f} {r['audio_seconds_mean']:>8.2f}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"prompt": args.prompt, "load_s": round(loaded, 3), "sets": results}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
