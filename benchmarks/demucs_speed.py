"""Demucs speed: the cost of the full-size htdemucs on this machine, with random weights.

Usage: python benchmarks/demucs_speed.py [--seconds 30] [--device cpu] [--threads N] [--no-backend]

Nothing is downloaded. The network is the released htdemucs architecture (hybrid time and
spectrogram U-Net with a 5-layer cross-transformer, about 42 M parameters; the hyper-parameters
of the release, 955717e8: 48 channels, depth 4, nfft 4096, dconv_mode 3, 512 bottom channels,
7.8 s segments at 44.1 kHz, stereo) initialised at random: its arithmetic, and so its speed and
memory, are those of the real model, though its stems are meaningless.

Two timings on the same random stereo noise:

1. ``apply_model`` alone (split=True, overlap 0.25, shifts 0), as demucs runs it;
2. unless ``--no-backend``, the project's ``DemucsSeparator``: the model is saved in demucs's
   ``.th`` format to a temporary folder and loaded through ``demucs.pretrained.get_model``,
   then ``separate`` (resampling, normalisation, stem mapping) runs on the same audio; the
   load is timed apart.

Prints seconds per minute of audio, the real-time factor and the peak resident memory
(``resource.getrusage``, the whole process so far).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scratch import scratch_dir  # noqa: E402 - after the path is set

SOURCES = ["drums", "bass", "other", "vocals"]
SAMPLE_RATE = 44_100
# The released htdemucs (signature 955717e8); everything else is HTDemucs's default.
HTDEMUCS_KWARGS = {
    "sources": SOURCES,
    "audio_channels": 2,
    "samplerate": SAMPLE_RATE,
    "segment": Fraction(39, 5),  # 7.8 s
    "channels": 48,
    "growth": 2,
    "nfft": 4096,
    "depth": 4,
    "dconv_mode": 3,
    "bottom_channels": 512,
    "t_layers": 5,
    "t_heads": 8,
    "t_hidden_scale": 4.0,
    "t_dropout": 0.02,
}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_htdemucs(seed: int = 0):
    """The full-size htdemucs network with random weights."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(**HTDEMUCS_KWARGS).eval()


def save_as_release(model, path: Path) -> None:
    """Write ``model`` as a demucs ``.th`` package (what ``serialize_model`` writes, half precision)."""
    import torch
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    torch.save(
        {"klass": model.__class__, "args": args, "kwargs": kwargs,
         "state": get_state(model, None, half=True), "training_args": {}},
        path,
    )


def report(label: str, elapsed_s: float, audio_s: float) -> None:
    print(
        f"{label}: {elapsed_s:.1f} s for {audio_s:g} s of audio = {elapsed_s * 60 / audio_s:.1f} s per minute "
        f"(real-time factor {elapsed_s / audio_s:.2f}); peak RSS so far {peak_rss_mb():.0f} MB",
        flush=True,
    )


def product_run(minutes: float) -> int:
    """Save the random full-size model, then measure the product path in a fresh process."""
    import subprocess

    data = scratch_dir("remix-demucs-")
    folder = data / "models" / "demucs"
    folder.mkdir(parents=True)
    save_as_release(build_htdemucs(), folder / "htdemucs.th")
    child = [sys.executable, __file__, "--product-child", str(data), "--product-minutes", str(minutes)]
    return subprocess.run(child, check=False).returncode


def product_child(data: Path, minutes: float) -> int:
    import numpy as np

    from tools.audio import Audio
    from tools.render import Source
    from tools.separate import get_separator, separate_cached
    from tools.settings import Settings

    settings = Settings(data_dir=data)
    # Ten seconds of a pulsing tone in noise, repeated: only the song itself stays in memory.
    frames = int(minutes * 60 * SAMPLE_RATE)
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    piece = (0.1 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(t.size))
    audio = Audio(np.tile(piece.astype(np.float32), (2, -(-frames // piece.size)))[:, :frames], SAMPLE_RATE)
    del t, piece
    separator = get_separator(settings, "demucs")
    before = peak_rss_mb()
    start = time.perf_counter()
    stems = separate_cached(audio, Source.from_audio(audio).key, settings, separator)
    elapsed_s = time.perf_counter() - start
    peak = peak_rss_mb()  # before the check below, which reads every stem back in
    report(f"separate_cached with {separator.model_id}", elapsed_s, minutes * 60)
    error = max(
        float(np.abs(sum(stems.stems[n].samples[:, i : i + SAMPLE_RATE * 60] for n in stems.stems)
                     - audio.samples[:, i : i + SAMPLE_RATE * 60]).max())
        for i in range(0, audio.frames, SAMPLE_RATE * 60)
    )
    print(f"peak RSS while separating {peak:.0f} MB (before separating {before:.0f} MB); "
          f"stems sum to the song within {error:.1e}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the stereo test audio (s)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-backend", action="store_true", help="time apply_model only")
    parser.add_argument(
        "--product-minutes",
        type=float,
        help="instead: save the model to a models folder, then separate a song this long through the "
        "product's path (separate_cached: blocks, stems to disk) in a fresh process; print time and peak RSS",
    )
    parser.add_argument("--product-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.product_child:
        return product_child(args.product_child, args.product_minutes)
    if args.product_minutes:
        return product_run(args.product_minutes)

    import numpy as np
    import torch
    from demucs.apply import apply_model

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}", flush=True)

    start = time.perf_counter()
    model = build_htdemucs()
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"htdemucs (random weights): {params_m:.1f} M parameters, segment {float(model.segment):g} s, "
          f"built in {time.perf_counter() - start:.1f} s; peak RSS {peak_rss_mb():.0f} MB", flush=True)

    frames = int(args.seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, frames))).astype(np.float32)

    # Warm-up on one segment so that one-off costs (allocator, kernels) are not timed.
    with torch.no_grad():
        apply_model(model, torch.from_numpy(mix[:, : int(model.segment * SAMPLE_RATE)])[None],
                    shifts=0, split=True, overlap=0.25, device=args.device)

    segments = 0

    def count(info: dict) -> None:
        nonlocal segments
        segments += info.get("state") == "end"

    start = time.perf_counter()
    out = apply_model(model, torch.from_numpy(mix)[None], shifts=0, split=True, overlap=0.25,
                      device=args.device, callback=count)
    elapsed_s = time.perf_counter() - start
    assert out.shape == (1, len(SOURCES), 2, frames) and torch.isfinite(out).all()
    report(f"apply_model ({segments} segments)", elapsed_s, args.seconds)

    if not args.no_backend:
        from tools.audio import Audio
        from tools.separators.demucs_backend import DemucsSeparator, demucs_folder

        with tempfile.TemporaryDirectory() as models_dir:
            folder = demucs_folder(Path(models_dir))
            folder.mkdir()
            save_as_release(model, folder / "htdemucs.th")
            del model, out
            separator = DemucsSeparator(Path(models_dir), device=args.device)
            audio = Audio(mix, SAMPLE_RATE)
            start = time.perf_counter()
            separator.separate(Audio(mix[:, :SAMPLE_RATE], SAMPLE_RATE))  # loads the model (1 s of audio)
            print(f"DemucsSeparator load + 1 s warm-up: {time.perf_counter() - start:.1f} s", flush=True)
            start = time.perf_counter()
            stems = separator.separate(audio)
            elapsed_s = time.perf_counter() - start
            assert all(stem.frames == frames for stem in stems.values())
            report("DemucsSeparator.separate", elapsed_s, args.seconds)
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
