"""Shared fixtures: an isolated data folder, synthetic signals, the shared media folder."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

# Numba compiles librosa's kernels on first use; keep them between test runs.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "numba"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path_factory, monkeypatch):
    """Every test writes its data (caches, renders) under a temporary folder, never the user's."""
    folder = tmp_path_factory.mktemp("remix-data")
    monkeypatch.setenv("REMIX_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def settings(_data_dir):
    from tools.settings import Settings

    return Settings(data_dir=_data_dir)


def sine(freq_hz: float, duration_s: float, sample_rate: int = 44100, amplitude: float = 0.5, channels: int = 2):
    """A float32 sine [shape=(channels, frames)]."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.repeat(wave[np.newaxis, :], channels, axis=0)


def click_track(bpm: float, duration_s: float, sample_rate: int = 44100, channels: int = 2):
    """Short decaying 2 kHz clicks on every beat [shape=(channels, frames)]."""
    frames = int(duration_s * sample_rate)
    out = np.zeros(frames, dtype=np.float32)
    click_len = int(0.02 * sample_rate)
    t = np.arange(click_len) / sample_rate
    click = (np.sin(2 * np.pi * 2000 * t) * np.exp(-t / 0.004)).astype(np.float32) * 0.8
    period = 60.0 / bpm
    for start in np.arange(0.25, duration_s - 0.05, period):
        i = int(round(start * sample_rate))
        out[i : i + click_len] += click[: frames - i]
    return np.repeat(out[np.newaxis, :], channels, axis=0)


@pytest.fixture
def song(tmp_path):
    """A 6-second song (clicks at 120 bpm over a 220 Hz tone) as a wav file."""
    from tools.audio import Audio, save

    path = tmp_path / "song.wav"
    save(Audio(click_track(120.0, 6.0) * 0.5 + sine(220.0, 6.0, amplitude=0.2), 44100), path)
    return path


def media_files(pattern: str) -> list[Path]:
    return sorted(MEDIA.glob(pattern)) if MEDIA.exists() else []


@contextmanager
def local_server(app, name: str = "test server"):
    """Serve an ASGI ``app`` with uvicorn on a free port of 127.0.0.1; yields its ``/v1`` base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the {name} did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def planner_song_analysis():
    """The analysis of a 170-second song with intro, two verses, two choruses and an outro (the planner tests' song)."""
    from tools.analyze import Analysis, Section

    layout = [("intro", 0, 16), ("verse", 16, 48), ("chorus", 48, 80), ("verse", 80, 112), ("chorus", 112, 144), ("outro", 144, 170)]
    counts: dict[str, int] = {}
    sections = []
    for i, (label, start, end) in enumerate(layout):
        counts[label] = counts.get(label, 0) + 1
        name = label if sum(s[0] == label for s in layout) == 1 else f"{label} {counts[label]}"
        sections.append(Section(id=f"s{i}", name=name, label=label, ordinal=counts[label], start=start, end=end, energy=0.8))
    return Analysis(
        duration_s=170.0, sample_rate=44100, tempo=120.0, beats=[], downbeats=[], beats_per_bar=4, sections=sections,
        key="A", mode="minor", key_confidence=0.8, loudness_lufs=-9.0,
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (restored after), so a model test's timing does not depend on the machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_with_av(audio, path: Path, container_format: str | None = None) -> Path:
    """Encode AAC with PyAV (its bundled FFmpeg): m4a, or raw ADTS ``.aac``."""
    import av

    layouts = {1: "mono", 2: "stereo", 6: "5.1"}
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("aac", rate=audio.sample_rate, layout=layouts[audio.channels])
        stream.bit_rate = 64_000 * audio.channels
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio.samples), format="fltp", layout=layouts[audio.channels]
        )
        frame.sample_rate = audio.sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
