"""Learned voice conversion: Retrieval-based Voice Conversion (RVC) models, loaded from local files only.

A cover "sung by <voice model>" re-voices the vocals stem with an RVC v2 (or v1) model. The
inference path of RVC (https://github.com/RVC-Project/Retrieval-based-Voice-Conversion-WebUI,
MIT licence) is reimplemented here, compactly and for inference only; the module and parameter
names are RVC's, so the ``NAME.pth`` files RVC exports load with ``load_state_dict(strict=True)``.

Files, all under ``settings.models_path / "voices"``:

* ``NAME.pth``: the checkpoint as RVC exports it: ``{"weight": state dict (float16, without the
  ``enc_q`` posterior encoder), "config": the 18 positional constructor arguments, "f0": 1 or 0,
  "version": "v2" or "v1", "info": ..., "sr": "40k"}``. It is read with ``weights_only=True``, so
  a checkpoint cannot run code when it is opened.
* ``NAME.licence.txt`` or ``NAME.json`` (``{"licence": ...}``): the voice's licence. A ``NAME.index``
  (RVC's feature-retrieval index) may sit beside it; it is not used.
* ``contentvec/``: the content encoder, a transformers ``HubertModel`` folder (``config.json`` and
  weights), e.g. the ContentVec conversion ``lengyue233/content-vec-best``. v1 models also need
  its ``final_proj`` weights, which that conversion includes.

How a vocal is converted (:meth:`VoiceConverter.convert`), following RVC's ``Pipeline``:

1. The mid of the input is resampled to 16 kHz, high-passed at 48 Hz (5th-order Butterworth, zero
   phase) and scaled down when it peaks over 0.95.
2. The caller's f0 track is moved onto RVC's frame grid (hop 160 at 16 kHz, 100 frames/s;
   :func:`f0_on_grid`), transposed by ``semitones`` and quantised to RVC's coarse pitch, 1..255 on
   a mel scale between 50 and 1100 Hz (:func:`coarse_f0`); the fine f0 drives the NSF source.
3. The song is cut into chunks of about ``chunk_s`` seconds, each cut moved to the quietest frame
   near it (as RVC does), and each chunk is converted with ``context_s`` of real (or, at the
   ends, reflected) audio on both sides, which is dropped afterwards.
4. Per chunk: HuBERT/ContentVec features (the last layer, 768-d, for v2; ``final_proj`` of layer 9,
   256-d, for v1) at 50 frames/s are repeated to 100 frames/s; the synthesizer's ``infer`` runs the
   prior encoder, samples ``z_p = m_p + exp(logs_p) * noise * 0.66666``, runs the flow in reverse
   and decodes with the NSF-HiFiGAN generator at the model's rate (32, 40 or 48 kHz).
5. Each chunk is resampled to the caller's rate (soxr) and the chunks are joined with linear
   crossfades of ``overlap_s``; the result peaks at no more than 0.99 and every channel gets it.

The random draws (the prior's noise and the NSF source's noise) are indexed by the frame and
sample they belong to, from generators seeded by ``seed``, and the NSF sine's phase is accumulated
over the whole song: two chunks that overlap draw the same values there, so they join without a
seam, and the same seed gives the same audio. Weight normalisation is kept as RVC's
``weight_g``/``weight_v`` parameters for loading and folded into plain weights afterwards.

The synthesizer was checked against RVC's own classes (``infer/module/models.py``): the same
state-dict keys and shapes for real v1/v2 configs (the tests keep that list), and the same
output, within 3e-7, for the same weights, inputs and noise. On a 2-core CPU a real-size v2
40 kHz model (random weights) with a ContentVec-size encoder converted 45 s of stereo in 166 s,
the process peaking at 2.5 GB; the HiFiGAN decoder takes over 80 % of the time.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BackendUnavailable, ParameterError
from .files import sha256_file
from .settings import Settings

if TYPE_CHECKING:
    import torch

__all__ = [
    "CONTENT_ENCODER_DIR",
    "UNKNOWN_LICENCE",
    "VOICES_SUBDIR",
    "VoiceConverter",
    "VoiceModelInfo",
    "VoiceModelMissing",
    "build_synthesizer",
    "coarse_f0",
    "f0_on_grid",
    "find_voice_model",
    "list_voice_models",
    "load_voice_model",
    "plan_chunks",
    "voice_model_info",
]

VOICES_SUBDIR = "voices"
CONTENT_ENCODER_DIR = "contentvec"
UNKNOWN_LICENCE = "unknown: the model's licence was not given; check it before sharing"

HUBERT_RATE = 16000
HOP = 160  # samples per frame at 16 kHz: 100 frames per second
FRAME_RATE = HUBERT_RATE // HOP
F0_MIN = 50.0  # RVC's coarse pitch range (Hz)
F0_MAX = 1100.0
NOISE_SCALE = 0.66666  # RVC's sampling temperature of the prior
SINE_AMP = 0.1  # RVC's NSF source: sine amplitude, noise in voiced frames (and sine_amp / 3 in unvoiced)
SINE_NOISE_STD = 0.003
HIGHPASS_HZ = 48.0
INPUT_PEAK = 0.95
OUTPUT_PEAK = 0.99
CHUNK_S = 20.0
CONTEXT_S = 1.0  # RVC's x_pad at full precision
OVERLAP_S = 0.25
CUT_SEARCH_S = 4.0  # a cut may move this far to the quietest frame
_NOISE_BLOCK = 256  # frames per seeded noise block

_SAMPLE_RATES = {"32k": 32000, "40k": 40000, "48k": 48000}
_CONFIG_FIELDS = (
    "spec_channels",
    "segment_size",
    "inter_channels",
    "hidden_channels",
    "filter_channels",
    "n_heads",
    "n_layers",
    "kernel_size",
    "p_dropout",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "upsample_rates",
    "upsample_initial_channel",
    "upsample_kernel_sizes",
    "spk_embed_dim",
    "gin_channels",
    "sr",
)
_FEATURE_DIMS = {"v1": 256, "v2": 768}
_ENCODER_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_LICENCE_WORDS = re.compile(r"(?i:licen[cs]e|public domain|apache)|\bCC[- ]?BY|\bCC0\b|\bMIT\b|\bL?GPL")


class VoiceModelMissing(BackendUnavailable):
    """A voice model or the content encoder is not on disk; the message says what to put where."""


# Finding models ----------------------------------------------------------------------------


def _voices_dir(settings: Settings) -> Path:
    return settings.models_path / VOICES_SUBDIR


def _layout_hint(settings: Settings, name: str = "NAME") -> str:
    folder = _voices_dir(settings)
    return (
        f"put the RVC checkpoint at {folder / (name + '.pth')} (an optional {name}.index beside it is not used; "
        f'give its licence in {name}.licence.txt or in {name}.json as a "licence" field), and the content encoder, '
        f"a transformers HubertModel folder (config.json and weights, e.g. the ContentVec conversion "
        f"lengyue233/content-vec-best), at {folder / CONTENT_ENCODER_DIR}"
    )


def list_voice_models(settings: Settings) -> list[str]:
    """Names of the ``NAME.pth`` files in ``models_path/voices``, sorted case-insensitively."""
    folder = _voices_dir(settings)
    if not folder.is_dir():
        return []
    names = [
        p.stem for p in folder.iterdir() if p.suffix.lower() == ".pth" and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(names, key=lambda n: (n.casefold(), n))


def _key(name: str) -> str:
    """A name for matching: case, spaces, underscores and hyphens ignored."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


def find_voice_model(name: str, settings: Settings) -> Path | None:
    """The checkpoint whose name matches ``name`` (exactly, else ignoring case, spaces, ``_`` and ``-``)."""
    name = name.strip()
    if name.lower().endswith(".pth"):
        name = name[:-4]
    if not name:
        return None
    names = list_voice_models(settings)
    folder = _voices_dir(settings)
    if name in names:
        return _checkpoint_path(folder, name)
    matches = [n for n in names if _key(n) == _key(name)]
    return _checkpoint_path(folder, matches[0]) if matches else None


def _checkpoint_path(folder: Path, stem: str) -> Path:
    for path in folder.iterdir():
        if path.stem == stem and path.suffix.lower() == ".pth":
            return path
    return folder / f"{stem}.pth"


def _require(name: str, settings: Settings) -> Path:
    path = find_voice_model(name, settings)
    if path is None:
        available = list_voice_models(settings)
        listed = ", ".join(available) if available else "none"
        raise VoiceModelMissing(
            f"voice model {name!r} not found in {_voices_dir(settings)} (available: {listed}); "
            + _layout_hint(settings, name.strip() or "NAME")
        )
    return path


# Checkpoint and info -----------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceModelInfo:
    """What a voice model is: its file, RVC version, output rate, pitch guidance and licence."""

    name: str
    path: Path
    version: str
    sample_rate: int
    f0: bool
    licence: str
    sha256: str


@dataclass(frozen=True)
class _Checkpoint:
    """A checked RVC checkpoint: float32 weights and the constructor arguments by name."""

    weight: dict
    config: dict
    version: str
    f0: bool
    sample_rate: int
    info: str


def _read_checkpoint(path: Path) -> _Checkpoint:
    """Load and check an exported RVC checkpoint; ParameterError (naming the file) when it is malformed."""
    import pickle

    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise ParameterError(
            f"cannot read voice model {path}: {exc.__class__.__name__}: {str(exc)[:300]} "
            "(an RVC .pth exported by RVC's inference or checkpoint tab is expected; "
            "files that need arbitrary code to unpickle are not opened)"
        ) from None
    if not isinstance(raw, dict):
        raise ParameterError(
            f"voice model {path} is not an RVC checkpoint: it holds a {type(raw).__name__}, not a dict"
        )
    if "weight" not in raw or "config" not in raw:
        hint = (
            " (it looks like a training checkpoint G_*.pth: export the small model with RVC first)"
            if "model" in raw
            else ""
        )
        raise ParameterError(f"voice model {path} lacks the 'weight' and 'config' entries of an RVC checkpoint{hint}")
    weight, config = raw["weight"], raw["config"]
    if not isinstance(weight, dict) or not all(isinstance(v, torch.Tensor) for v in weight.values()):
        raise ParameterError(f"voice model {path}: 'weight' is not a state dict of tensors")
    if not isinstance(config, (list, tuple)) or len(config) < len(_CONFIG_FIELDS):
        raise ParameterError(
            f"voice model {path}: 'config' must list RVC's {len(_CONFIG_FIELDS)} constructor arguments "
            f"({', '.join(_CONFIG_FIELDS)}), got {config!r:.200}"
        )
    named = dict(zip(_CONFIG_FIELDS, config[: len(_CONFIG_FIELDS)]))
    version = str(raw.get("version", "v1"))  # RVC's default for files from before v2
    if version not in _FEATURE_DIMS:
        raise ParameterError(f"voice model {path}: version {version!r} is not supported (v1 or v2)")
    f0 = raw.get("f0", 1)
    if f0 not in (0, 1, True, False):
        raise ParameterError(f"voice model {path}: 'f0' must be 1 or 0, got {f0!r}")
    weight = _canonical_keys({k: v.float() for k, v in weight.items() if not k.startswith("enc_q.")})
    if "emb_g.weight" in weight:  # as RVC: the speaker count is the embedding's
        named["spk_embed_dim"] = int(weight["emb_g.weight"].shape[0])
    sample_rate = _sample_rate(named["sr"], raw.get("sr"), path)
    named["sr"] = sample_rate
    _check_config(named, path)
    return _Checkpoint(weight, named, version, bool(f0), sample_rate, str(raw.get("info", "")))


def _canonical_keys(weight: dict) -> dict:
    """RVC's legacy weight-norm key names for checkpoints saved with torch's parametrizations."""
    out = {}
    for key, value in weight.items():
        key = key.replace(".parametrizations.weight.original0", ".weight_g")
        key = key.replace(".parametrizations.weight.original1", ".weight_v")
        out[key] = value
    return out


def _sample_rate(config_sr: Any, top_sr: Any, path: Path) -> int:
    for value in (config_sr, top_sr):
        if isinstance(value, str) and value in _SAMPLE_RATES:
            return _SAMPLE_RATES[value]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    raise ParameterError(f"voice model {path}: no usable sampling rate (config sr={config_sr!r}, sr={top_sr!r})")


def _check_config(config: dict, path: Path) -> None:
    """Types and the frame rate: the decoder must turn 100 frames per second into ``sr`` samples."""
    try:
        ints = [
            int(config[k])
            for k in (
                "inter_channels",
                "hidden_channels",
                "filter_channels",
                "n_heads",
                "n_layers",
                "kernel_size",
                "upsample_initial_channel",
                "spk_embed_dim",
                "gin_channels",
            )
        ]
        rates = [int(r) for r in config["upsample_rates"]]
        kernels = [int(k) for k in config["upsample_kernel_sizes"]]
        res_kernels = [int(k) for k in config["resblock_kernel_sizes"]]
        dilations = [[int(d) for d in ds] for ds in config["resblock_dilation_sizes"]]
        float(config["p_dropout"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ParameterError(f"voice model {path}: malformed 'config' ({exc})") from None
    if min(ints) <= 0 or not rates or len(rates) != len(kernels) or len(res_kernels) != len(dilations):
        raise ParameterError(f"voice model {path}: inconsistent 'config' {[config[k] for k in _CONFIG_FIELDS]!r:.300}")
    if str(config["resblock"]) not in ("1", "2"):
        raise ParameterError(f"voice model {path}: resblock must be '1' or '2', got {config['resblock']!r}")
    if config["sr"] != FRAME_RATE * math.prod(rates):
        raise ParameterError(
            f"voice model {path}: sampling rate {config['sr']} does not match its decoder, which makes "
            f"{math.prod(rates)} samples per frame at {FRAME_RATE} frames per second"
        )


def _licence(path: Path, info: str) -> str:
    """The licence from ``NAME.licence.txt`` (or ``.license.txt``), ``NAME.json`` or the checkpoint's info."""
    for suffix in (".licence.txt", ".license.txt"):
        sidecar = path.with_name(path.stem + suffix)
        if sidecar.is_file():
            text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            meta = None
        if isinstance(meta, dict):
            for field in ("licence", "license"):
                if isinstance(meta.get(field), str) and meta[field].strip():
                    return meta[field].strip()
    if info and _LICENCE_WORDS.search(info):  # RVC's info is usually "300epoch"; only a licence-like text counts
        return info.strip()
    return UNKNOWN_LICENCE


def _stamp(path: Path) -> int:
    stat = path.stat()
    return stat.st_mtime_ns ^ (stat.st_size << 1)


@lru_cache(maxsize=16)
def _info(path: Path, stamp: int, licence_stamp: tuple) -> VoiceModelInfo:
    checkpoint = _read_checkpoint(path)
    return VoiceModelInfo(
        name=path.stem,
        path=path,
        version=checkpoint.version,
        sample_rate=checkpoint.sample_rate,
        f0=checkpoint.f0,
        licence=_licence(path, checkpoint.info),
        sha256=sha256_file(path),
    )


def _licence_stamp(path: Path) -> tuple:
    out = []
    for sidecar in (
        path.with_name(path.stem + ".licence.txt"),
        path.with_name(path.stem + ".license.txt"),
        path.with_suffix(".json"),
    ):
        out.append(_stamp(sidecar) if sidecar.is_file() else None)
    return tuple(out)


def voice_model_info(name: str, settings: Settings) -> VoiceModelInfo:
    """Version, rate, pitch guidance, licence and sha256 of a voice model.

    Raises:
        VoiceModelMissing: no such model (the message says where to put one).
        ParameterError: the file is not a usable RVC checkpoint.
    """
    path = _require(name, settings).resolve()
    return _info(path, _stamp(path), _licence_stamp(path))


# Pitch -------------------------------------------------------------------------------------


def f0_on_grid(f0_hz: np.ndarray, f0_times: np.ndarray, n_frames: int, semitones: float = 0.0) -> np.ndarray:
    """The f0 track on RVC's frame grid (frame ``i`` at ``i / 100`` s), transposed, 0 where unvoiced.

    Voicing comes from the nearest input frame (and frames more than one input step beyond the
    track are unvoiced); voiced values are interpolated linearly in log frequency between voiced
    input frames. ``semitones`` multiplies every voiced value by ``2 ** (semitones / 12)``.
    """
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    times = np.asarray(f0_times, dtype=np.float64).reshape(-1)
    if f0.shape != times.shape:
        raise ParameterError(f"f0_hz ({f0.size} values) and f0_times ({times.size} values) must have the same length")
    if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(times))):
        raise ParameterError("f0_hz and f0_times must be finite (use 0 Hz for unvoiced frames)")
    if np.any(f0 < 0):
        raise ParameterError("f0_hz must not be negative (use 0 Hz for unvoiced frames)")
    if times.size > 1 and np.any(np.diff(times) <= 0):
        raise ParameterError("f0_times must be strictly increasing")
    if not math.isfinite(semitones):
        raise ParameterError(f"semitones={semitones!r} must be a finite number")
    grid = np.arange(n_frames, dtype=np.float64) / FRAME_RATE
    out = np.zeros(n_frames, dtype=np.float64)
    voiced_in = f0 > 0
    if n_frames == 0 or not np.any(voiced_in):
        return out
    step = float(np.median(np.diff(times))) if times.size > 1 else 1.0 / FRAME_RATE
    right = np.clip(np.searchsorted(times, grid), 0, times.size - 1)
    left = np.clip(right - 1, 0, times.size - 1)
    nearest = np.where(np.abs(times[left] - grid) <= np.abs(times[right] - grid), left, right)
    voiced = voiced_in[nearest] & (grid >= times[0] - step) & (grid <= times[-1] + step)
    log_f0 = np.interp(grid, times[voiced_in], np.log2(f0[voiced_in]))
    out[voiced] = np.exp2(log_f0[voiced] + semitones / 12.0)
    return out


def coarse_f0(f0_hz: np.ndarray) -> np.ndarray:
    """RVC's coarse pitch: 1 (unvoiced or below 50 Hz) .. 255, on a mel scale between 50 and 1100 Hz."""
    f0 = np.asarray(f0_hz, dtype=np.float64)
    mel_min = 1127.0 * np.log(1.0 + F0_MIN / 700.0)
    mel_max = 1127.0 * np.log(1.0 + F0_MAX / 700.0)
    mel = 1127.0 * np.log(1.0 + f0 / 700.0)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - mel_min) * 254.0 / (mel_max - mel_min) + 1.0
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int64)


# Chunks ------------------------------------------------------------------------------------


def plan_chunks(energy: np.ndarray, chunk: int, overlap: int, search: int) -> list[tuple[int, int]]:
    """Frame ranges ``(start, stop)`` covering ``range(len(energy))`` in pieces of at most ``chunk`` frames.

    Each inner cut sits at the quietest frame (the latest of equals) within ``search`` frames
    before the nominal one, and never in the first half of its chunk (RVC cuts at quiet points
    too); neighbours overlap by ``overlap`` frames centred on the cut.
    """
    n = len(energy)
    overlap = max(int(overlap), 0)
    chunk = max(int(chunk), 2 * overlap + 2)
    after = overlap - overlap // 2  # overlap frames after the cut
    chunks: list[tuple[int, int]] = []
    start = 0
    while n - start > chunk:
        nominal = start + chunk - after
        low = max(start + max(overlap + 1, chunk // 2), nominal - max(int(search), 0))
        window = energy[low : nominal + 1]
        cut = low + window.size - 1 - int(np.argmin(window[::-1])) if window.size else nominal
        chunks.append((start, cut + after))
        start = cut - overlap // 2
    chunks.append((start, n))
    return chunks


def _fade_weights(length: int, head: int, tail: int) -> np.ndarray:
    """Gain of one chunk: a linear fade-in over ``head`` samples and fade-out over ``tail`` (the pairs sum to 1)."""
    weights = np.ones(length, dtype=np.float64)
    if head > 0:
        weights[:head] = (np.arange(head) + 0.5) / head
    if tail > 0:
        weights[length - tail :] *= 1.0 - (np.arange(tail) + 0.5) / tail
    return weights


def _indexed_noise(seed: int, stream: int, start: int, stop: int, channels: int, block: int) -> torch.Tensor:
    """Standard normal noise for indices ``start..stop`` (any sign), the same whichever range asks for them.

    Index ``i`` belongs to block ``i // block``, whose values come from a generator seeded by
    ``(seed, stream, block)``.
    """
    import torch

    parts = []
    first, last = start // block, (stop - 1) // block
    for index in range(first, last + 1):
        generator = torch.Generator().manual_seed((seed * 1_000_003 + stream * 7_919 + index * 104_729) % (2**63))
        values = torch.randn(channels, block, generator=generator)
        lo = max(start - index * block, 0)
        hi = min(stop - index * block, block)
        parts.append(values[:, lo:hi])
    return torch.cat(parts, dim=1) if parts else torch.zeros(channels, 0)


# The synthesizer (RVC's SynthesizerTrnMs{256,768}NSFsid and the _nono variants) -------------


@lru_cache(maxsize=1)
def _nn() -> Any:
    """RVC's modules, defined on first use so that importing this module does not import torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    lrelu_slope = 0.1

    def weight_norm(module: nn.Module) -> nn.Module:
        """Torch's legacy weight norm as RVC uses it: ``weight_g`` (norm over all but dim 0) and ``weight_v``."""
        weight = module.weight
        del module._parameters["weight"]
        module.weight_g = nn.Parameter(_norm(weight.detach()))
        module.weight_v = nn.Parameter(weight.detach().clone())
        module.weight = _compose(module.weight_v, module.weight_g)
        module._wn_hook = module.register_forward_pre_hook(
            lambda m, _: setattr(m, "weight", _compose(m.weight_v, m.weight_g))
        )
        return module

    def _norm(v: torch.Tensor) -> torch.Tensor:
        return v.norm(dim=tuple(range(1, v.dim())), keepdim=True)

    def _compose(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return v * (g / _norm(v))

    def fold_weight_norms(root: nn.Module) -> None:
        """Replace every ``weight_g``/``weight_v`` pair with the plain weight they make."""
        for module in root.modules():
            if hasattr(module, "_wn_hook"):
                weight = _compose(module.weight_v, module.weight_g).detach()
                module._wn_hook.remove()
                del module._wn_hook, module._parameters["weight_g"], module._parameters["weight_v"]
                del module.weight
                module.weight = nn.Parameter(weight)

    def padding(kernel: int, dilation: int = 1) -> int:
        return (kernel * dilation - dilation) // 2

    class LayerNorm(nn.Module):
        def __init__(self, channels: int, eps: float = 1e-5):
            super().__init__()
            self.channels, self.eps = channels, eps
            self.gamma = nn.Parameter(torch.ones(channels))
            self.beta = nn.Parameter(torch.zeros(channels))

        def forward(self, x):
            x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
            return x.transpose(1, -1)

    class MultiHeadAttention(nn.Module):
        """Self-attention with relative position embeddings (window 10, shared by the heads)."""

        def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: int = 10):
            super().__init__()
            self.n_heads, self.window_size = n_heads, window_size
            self.k_channels = channels // n_heads
            self.conv_q = nn.Conv1d(channels, channels, 1)
            self.conv_k = nn.Conv1d(channels, channels, 1)
            self.conv_v = nn.Conv1d(channels, channels, 1)
            self.conv_o = nn.Conv1d(channels, out_channels, 1)
            scale = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, window_size * 2 + 1, self.k_channels) * scale)
            self.emb_rel_v = nn.Parameter(torch.randn(1, window_size * 2 + 1, self.k_channels) * scale)

        def forward(self, x, mask):
            q, k, v = self.conv_q(x), self.conv_k(x), self.conv_v(x)
            b, d, t = k.shape
            q = q.view(b, self.n_heads, self.k_channels, t).transpose(2, 3) / math.sqrt(self.k_channels)
            k = k.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
            v = v.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
            scores = torch.matmul(q, k.transpose(-2, -1))
            rel_k = self._relative_embeddings(self.emb_rel_k, t)
            scores = scores + self._relative_to_absolute(torch.matmul(q, rel_k.unsqueeze(0).transpose(-2, -1)))
            scores = scores.masked_fill(mask == 0, -1e4)
            p_attn = F.softmax(scores, dim=-1)
            out = torch.matmul(p_attn, v)
            rel_v = self._relative_embeddings(self.emb_rel_v, t)
            out = out + torch.matmul(self._absolute_to_relative(p_attn), rel_v.unsqueeze(0))
            return self.conv_o(out.transpose(2, 3).contiguous().view(b, d, t))

        def _relative_embeddings(self, embeddings, length):
            pad = max(length - (self.window_size + 1), 0)
            first = max((self.window_size + 1) - length, 0)
            if pad > 0:
                embeddings = F.pad(embeddings, [0, 0, pad, pad, 0, 0])
            return embeddings[:, first : first + 2 * length - 1]

        @staticmethod
        def _relative_to_absolute(x):
            batch, heads, length, _ = x.shape
            x = F.pad(x, [0, 1, 0, 0, 0, 0, 0, 0]).view(batch, heads, length * 2 * length)
            x = F.pad(x, [0, length - 1, 0, 0, 0, 0])
            return x.view(batch, heads, length + 1, 2 * length - 1)[:, :, :length, length - 1 :]

        @staticmethod
        def _absolute_to_relative(x):
            batch, heads, length, _ = x.shape
            x = F.pad(x, [0, length - 1, 0, 0, 0, 0, 0, 0]).view(batch, heads, length**2 + length * (length - 1))
            x = F.pad(x, [length, 0, 0, 0, 0, 0])
            return x.view(batch, heads, length, 2 * length)[:, :, :, 1:]

    class FFN(nn.Module):
        def __init__(self, in_channels: int, out_channels: int, filter_channels: int, kernel_size: int):
            super().__init__()
            self.kernel_size = kernel_size
            self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
            self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)

        def _pad(self, x):
            if self.kernel_size == 1:
                return x
            return F.pad(x, [(self.kernel_size - 1) // 2, self.kernel_size // 2])

        def forward(self, x, x_mask):
            x = torch.relu(self.conv_1(self._pad(x * x_mask)))
            return self.conv_2(self._pad(x * x_mask)) * x_mask

    class Encoder(nn.Module):
        def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int):
            super().__init__()
            self.attn_layers = nn.ModuleList(MultiHeadAttention(hidden, hidden, n_heads) for _ in range(n_layers))
            self.norm_layers_1 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))
            self.ffn_layers = nn.ModuleList(FFN(hidden, hidden, filter_channels, kernel_size) for _ in range(n_layers))
            self.norm_layers_2 = nn.ModuleList(LayerNorm(hidden) for _ in range(n_layers))

        def forward(self, x, x_mask):
            attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
            x = x * x_mask
            for attn, norm_1, ffn, norm_2 in zip(
                self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2
            ):
                x = norm_1(x + attn(x, attn_mask))
                x = norm_2(x + ffn(x, x_mask))
            return x * x_mask

    class TextEncoder(nn.Module):
        """RVC's prior encoder: content features (+ coarse pitch) to the prior's mean and log-scale."""

        def __init__(self, in_channels, out_channels, hidden, filter_channels, n_heads, n_layers, kernel_size, f0):
            super().__init__()
            self.out_channels, self.hidden_channels = out_channels, hidden
            self.emb_phone = nn.Linear(in_channels, hidden)
            if f0:
                self.emb_pitch = nn.Embedding(256, hidden)
            self.encoder = Encoder(hidden, filter_channels, n_heads, n_layers, kernel_size)
            self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

        def forward(self, phone, pitch, lengths):
            x = self.emb_phone(phone)
            if pitch is not None:
                x = x + self.emb_pitch(pitch)
            x = F.leaky_relu(x * math.sqrt(self.hidden_channels), 0.1).transpose(1, -1)
            x_mask = (torch.arange(x.size(2), device=x.device)[None, :] < lengths[:, None]).unsqueeze(1).to(x.dtype)
            x = self.encoder(x * x_mask, x_mask)
            m, logs = torch.split(self.proj(x) * x_mask, self.out_channels, dim=1)
            return m, logs, x_mask

    class WN(nn.Module):
        def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int):
            super().__init__()
            self.hidden_channels, self.n_layers = hidden, n_layers
            if gin_channels:
                self.cond_layer = weight_norm(nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1))
            self.in_layers = nn.ModuleList()
            self.res_skip_layers = nn.ModuleList()
            for i in range(n_layers):
                dilation = dilation_rate**i
                self.in_layers.append(
                    weight_norm(
                        nn.Conv1d(
                            hidden, 2 * hidden, kernel_size, dilation=dilation, padding=padding(kernel_size, dilation)
                        )
                    )
                )
                out = 2 * hidden if i < n_layers - 1 else hidden
                self.res_skip_layers.append(weight_norm(nn.Conv1d(hidden, out, 1)))

        def forward(self, x, x_mask, g=None):
            output = torch.zeros_like(x)
            h = self.hidden_channels
            if g is not None:
                g = self.cond_layer(g)
            for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
                x_in = in_layer(x)
                if g is not None:
                    x_in = x_in + g[:, i * 2 * h : (i + 1) * 2 * h, :]
                acts = torch.tanh(x_in[:, :h]) * torch.sigmoid(x_in[:, h:])
                res = res_skip(acts)
                if i < self.n_layers - 1:
                    x = (x + res[:, :h]) * x_mask
                    output = output + res[:, h:]
                else:
                    output = output + res
            return output * x_mask

    class ResidualCouplingLayer(nn.Module):
        def __init__(self, channels, hidden, kernel_size, dilation_rate, n_layers, gin_channels):
            super().__init__()
            self.half_channels = channels // 2
            self.pre = nn.Conv1d(self.half_channels, hidden, 1)
            self.enc = WN(hidden, kernel_size, dilation_rate, n_layers, gin_channels)
            self.post = nn.Conv1d(hidden, self.half_channels, 1)  # mean only

        def reverse(self, x, x_mask, g):
            x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
            h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
            return torch.cat([x0, (x1 - self.post(h) * x_mask) * x_mask], 1)

    class Flip(nn.Module):
        def reverse(self, x, x_mask, g):
            return torch.flip(x, [1])

    class ResidualCouplingBlock(nn.Module):
        def __init__(self, channels, hidden, kernel_size, dilation_rate, n_layers, gin_channels, n_flows=4):
            super().__init__()
            self.flows = nn.ModuleList()
            for _ in range(n_flows):
                self.flows.append(
                    ResidualCouplingLayer(channels, hidden, kernel_size, dilation_rate, n_layers, gin_channels)
                )
                self.flows.append(Flip())

        def reverse(self, x, x_mask, g):
            for flow in reversed(self.flows):
                x = flow.reverse(x, x_mask, g)
            return x

    class ResBlock(nn.Module):
        """RVC's ResBlock1 (``convs1``/``convs2``) or ResBlock2 (``convs``)."""

        def __init__(self, channels: int, kernel_size: int, dilation: Sequence[int], kind: str):
            super().__init__()
            self.kind = kind

            def conv(d):
                return weight_norm(
                    nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=padding(kernel_size, d))
                )

            if kind == "1":
                self.convs1 = nn.ModuleList(conv(d) for d in dilation[:3])
                self.convs2 = nn.ModuleList(conv(1) for _ in dilation[:3])
            else:
                self.convs = nn.ModuleList(conv(d) for d in dilation[:2])

        def forward(self, x):
            if self.kind == "1":
                for c1, c2 in zip(self.convs1, self.convs2):
                    x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, lrelu_slope)), lrelu_slope))
            else:
                for c in self.convs:
                    x = x + c(F.leaky_relu(x, lrelu_slope))
            return x

    class SourceModuleHnNSF(nn.Module):
        """The NSF excitation: a sine at f0 (noise where unvoiced) mixed by one linear unit and a tanh."""

        def __init__(self):
            super().__init__()
            self.l_linear = nn.Linear(1, 1)

        def forward(self, phase, uv, noise):
            sine = torch.sin(2 * math.pi * phase) * SINE_AMP
            noise_amp = uv * SINE_NOISE_STD + (1 - uv) * SINE_AMP / 3
            source = (sine * uv + noise_amp * noise).to(self.l_linear.weight.dtype)
            return torch.tanh(self.l_linear(source.unsqueeze(-1))).transpose(1, 2)

    class Generator(nn.Module):
        """RVC's HiFiGAN decoder; with ``nsf`` its GeneratorNSF (a harmonic source added at every scale)."""

        def __init__(
            self,
            initial_channel,
            resblock,
            resblock_kernel_sizes,
            resblock_dilation_sizes,
            upsample_rates,
            upsample_initial_channel,
            upsample_kernel_sizes,
            gin_channels,
            nsf,
        ):
            super().__init__()
            self.num_kernels = len(resblock_kernel_sizes)
            self.upp = math.prod(upsample_rates)
            if nsf:
                self.m_source = SourceModuleHnNSF()
                self.noise_convs = nn.ModuleList()
            self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
            self.ups = nn.ModuleList()
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)):
                c_out = upsample_initial_channel // (2 ** (i + 1))
                self.ups.append(
                    weight_norm(
                        nn.ConvTranspose1d(upsample_initial_channel // (2**i), c_out, k, u, padding=(k - u) // 2)
                    )
                )
                if nsf:
                    if i + 1 < len(upsample_rates):
                        stride = math.prod(upsample_rates[i + 1 :])
                        self.noise_convs.append(nn.Conv1d(1, c_out, stride * 2, stride=stride, padding=stride // 2))
                    else:
                        self.noise_convs.append(nn.Conv1d(1, c_out, 1))
            self.resblocks = nn.ModuleList()
            for i in range(len(self.ups)):
                ch = upsample_initial_channel // (2 ** (i + 1))
                for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                    self.resblocks.append(ResBlock(ch, k, d, str(resblock)))
            self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
            if gin_channels:
                self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

        def forward(self, x, g=None, source=None):
            x = self.conv_pre(x)
            if g is not None:
                x = x + self.cond(g)
            for i, up in enumerate(self.ups):
                x = up(F.leaky_relu(x, lrelu_slope))
                if source is not None:
                    x = x + self.noise_convs[i](source)
                blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
                x = sum(block(x) for block in blocks) / self.num_kernels
            return torch.tanh(self.conv_post(F.leaky_relu(x)))

    class Synthesizer(nn.Module):
        """RVC's SynthesizerTrnMs{256,768}NSFsid (``f0``) and ``..._nono``, without the posterior encoder."""

        def __init__(self, config: dict, feature_dim: int, f0: bool):
            super().__init__()
            self.f0 = f0
            self.sample_rate = int(config["sr"])
            inter, hidden = int(config["inter_channels"]), int(config["hidden_channels"])
            gin = int(config["gin_channels"])
            self.enc_p = TextEncoder(
                feature_dim,
                inter,
                hidden,
                int(config["filter_channels"]),
                int(config["n_heads"]),
                int(config["n_layers"]),
                int(config["kernel_size"]),
                f0,
            )
            self.dec = Generator(
                inter,
                str(config["resblock"]),
                [int(k) for k in config["resblock_kernel_sizes"]],
                [[int(d) for d in ds] for ds in config["resblock_dilation_sizes"]],
                [int(r) for r in config["upsample_rates"]],
                int(config["upsample_initial_channel"]),
                [int(k) for k in config["upsample_kernel_sizes"]],
                gin,
                f0,
            )
            self.flow = ResidualCouplingBlock(inter, hidden, 5, 1, 3, gin)
            self.emb_g = nn.Embedding(int(config["spk_embed_dim"]), gin)

        @property
        def upp(self) -> int:
            return self.dec.upp

        def infer(self, phone, phone_lengths, pitch, nsff0, sid, *, prior_noise, source=None):
            """RVC's ``infer``: the prior sampled with ``prior_noise`` (standard normal, like ``m_p``), the
            flow reversed, and the decoder; ``source`` is the NSF excitation's (phase, uv, noise) per sample."""
            g = self.emb_g(sid).unsqueeze(-1)
            m_p, logs_p, x_mask = self.enc_p(phone, pitch if self.f0 else None, phone_lengths)
            z_p = (m_p + torch.exp(logs_p) * prior_noise * NOISE_SCALE) * x_mask
            z = self.flow.reverse(z_p, x_mask, g)
            excitation = self.dec.m_source(*source) if self.f0 else None
            return self.dec(z * x_mask, g=g, source=excitation)

    return SimpleNamespace(Synthesizer=Synthesizer, fold_weight_norms=fold_weight_norms)


def build_synthesizer(config: dict | Sequence, version: str = "v2", f0: bool = True) -> torch.nn.Module:
    """An RVC synthesizer with random weights whose ``state_dict`` keys are RVC's exported ones.

    ``config`` is RVC's positional constructor list (or a dict by the same names). The weight
    norms are unfolded (``weight_g``/``weight_v``), as in RVC's files.
    """
    if version not in _FEATURE_DIMS:
        raise ParameterError(f"version {version!r} is not supported (v1 or v2)")
    if not isinstance(config, dict):
        config = dict(zip(_CONFIG_FIELDS, config))
    config = dict(config)
    if isinstance(config.get("sr"), str):
        config["sr"] = _SAMPLE_RATES[config["sr"]]
    return _nn().Synthesizer(config, _FEATURE_DIMS[version], bool(f0))


# The content encoder -----------------------------------------------------------------------


def _encoder_folder(settings: Settings) -> Path:
    folder = _voices_dir(settings) / CONTENT_ENCODER_DIR
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in _ENCODER_WEIGHTS):
        missing.append("the weights (" + " or ".join(_ENCODER_WEIGHTS) + ")")
    if missing:
        state = "is incomplete (missing " + ", ".join(missing) + ")" if folder.is_dir() else "does not exist"
        raise VoiceModelMissing(
            f"the voice models' content encoder folder {folder} {state}: put a transformers HubertModel folder there "
            "(config.json and model.safetensors, e.g. the ContentVec conversion lengyue233/content-vec-best, "
            "written with save_pretrained)"
        )
    return folder


@lru_cache(maxsize=1)
def _hubert_class() -> Any:
    """transformers' ``HubertModel``, quiet about the ``final_proj`` weights ContentVec conversions carry (read apart)."""
    from transformers import HubertModel

    class ContentVecHubert(HubertModel):
        _keys_to_ignore_on_load_unexpected = (r"^final_proj\.",)

    return ContentVecHubert


class _ContentEncoder:
    """HuBERT/ContentVec features: v2 the last layer, v1 ``final_proj`` of layer 9."""

    def __init__(self, folder: Path):
        import torch

        self.folder = folder
        try:
            self.model = _hubert_class().from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
        except (OSError, ValueError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
            raise ParameterError(f"cannot load the content encoder from {folder}: {exc}") from exc
        preprocessor = folder / "preprocessor_config.json"
        try:
            settings = json.loads(preprocessor.read_text()) if preprocessor.is_file() else {}
        except json.JSONDecodeError:
            settings = {}
        self.normalize = bool(settings.get("do_normalize", False))
        self._final_proj: Any = None

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def final_proj(self) -> torch.nn.Linear:
        """The projection v1 models were trained on, read from the folder's weights."""
        import torch

        if self._final_proj is None:
            tensors = _read_tensors(self.folder, ("final_proj.weight", "final_proj.bias"))
            if "final_proj.weight" not in tensors:
                raise VoiceModelMissing(
                    f"the content encoder in {self.folder} has no final_proj weights, which RVC v1 models need: "
                    "use a ContentVec conversion that keeps them (e.g. lengyue233/content-vec-best)"
                )
            weight = tensors["final_proj.weight"].float()
            layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias="final_proj.bias" in tensors)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if layer.bias is not None:
                    layer.bias.copy_(tensors["final_proj.bias"].float())
            self._final_proj = layer.eval()
        return self._final_proj

    def feature_dim(self, version: str) -> int:
        if version == "v1":
            layers = int(self.model.config.num_hidden_layers)
            if layers < 9:
                raise ParameterError(
                    f"the content encoder in {self.folder} has {layers} layers; RVC v1 models read layer 9 (ContentVec)"
                )
            return int(self.final_proj().out_features)
        return self.hidden_size

    def features(self, audio16: torch.Tensor, version: str) -> torch.Tensor:
        """Features at 50 frames/s [shape=(1, frames, dim)] of 16 kHz mono [shape=(1, samples)]."""
        if self.normalize:
            audio16 = (audio16 - audio16.mean()) / (audio16.var(unbiased=False) + 1e-7).sqrt()
        if version == "v1":
            hidden = self.model(input_values=audio16, output_hidden_states=True, return_dict=True).hidden_states
            return self.final_proj()(hidden[9])
        return self.model(input_values=audio16, return_dict=True).last_hidden_state


def _read_tensors(folder: Path, keys: Sequence[str]) -> dict:
    """Some tensors from a transformers weights folder (safetensors or pytorch_model.bin, sharded or not)."""
    import torch

    files: list[Path] = []
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            files += [folder / weight_map[k] for k in keys if k in weight_map]
    files += [folder / name for name in ("model.safetensors", "pytorch_model.bin") if (folder / name).is_file()]
    out: dict = {}
    for path in dict.fromkeys(files):
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                available = set(handle.keys())
                out.update({k: handle.get_tensor(k) for k in keys if k in available})
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            out.update({k: state[k] for k in keys if k in state})
    return out


@lru_cache(maxsize=1)
def _load_encoder(folder: Path, stamp: int) -> _ContentEncoder:
    return _ContentEncoder(folder)


# Loading and converting --------------------------------------------------------------------


@lru_cache(maxsize=2)
def _load(path: Path, stamp: int, licence_stamp: tuple, encoder_folder: Path, encoder_stamp: int) -> VoiceConverter:
    checkpoint = _read_checkpoint(path)
    encoder = _load_encoder(encoder_folder, encoder_stamp)
    expected = _FEATURE_DIMS[checkpoint.version]
    if encoder.feature_dim(checkpoint.version) != expected:
        raise ParameterError(
            f"the content encoder in {encoder_folder} gives {encoder.feature_dim(checkpoint.version)}-d features, "
            f"but {path} ({checkpoint.version}) needs {expected}-d ones"
        )
    synthesizer = _nn().Synthesizer(checkpoint.config, expected, checkpoint.f0)
    own = synthesizer.state_dict()
    missing = sorted(set(own) - set(checkpoint.weight))
    unexpected = sorted(set(checkpoint.weight) - set(own))
    if missing or unexpected:
        raise ParameterError(
            f"voice model {path} does not match RVC's {checkpoint.version} "
            f"{'pitch-guided ' if checkpoint.f0 else ''}synthesizer: "
            + "; ".join(
                f"{label} {len(keys)} keys ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
                for label, keys in (("missing", missing), ("unexpected", unexpected))
                if keys
            )
        )
    try:
        synthesizer.load_state_dict(checkpoint.weight, strict=True)
    except RuntimeError as exc:
        raise ParameterError(f"voice model {path} does not fit its own config: {str(exc)[:500]}") from None
    _nn().fold_weight_norms(synthesizer)
    synthesizer.eval()
    for parameter in synthesizer.parameters():
        parameter.requires_grad_(False)
    return VoiceConverter(_info(path, stamp, licence_stamp), synthesizer, encoder)


def load_voice_model(name: str, settings: Settings) -> VoiceConverter:
    """The converter for voice model ``name``, loaded once per file version (path and mtime).

    Raises:
        VoiceModelMissing: the model or the content encoder is not on disk.
        ParameterError: the checkpoint or the encoder is malformed (the message names the file).
    """
    path = _require(name, settings).resolve()
    encoder_folder = _encoder_folder(settings).resolve()
    encoder_stamp = _stamp(encoder_folder / "config.json")
    return _load(path, _stamp(path), _licence_stamp(path), encoder_folder, encoder_stamp)


def _check_samples(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ParameterError(f"samples must be (channels, frames), got shape {samples.shape}")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise ParameterError(f"sample_rate={sample_rate!r} must be a positive integer")
    if not np.all(np.isfinite(samples)):
        raise ParameterError("samples must be finite")
    return samples


def _input16(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """RVC's input: the mid at 16 kHz, high-passed at 48 Hz (zero phase), at most ``INPUT_PEAK``."""
    import soxr
    from scipy import signal

    mid = samples.astype(np.float64).mean(axis=0)
    audio = mid if sample_rate == HUBERT_RATE else soxr.resample(mid, sample_rate, HUBERT_RATE, quality="HQ")
    if audio.size > 33:  # sosfiltfilt's padding needs a few samples
        sos = signal.butter(5, HIGHPASS_HZ, btype="high", fs=HUBERT_RATE, output="sos")
        audio = signal.sosfiltfilt(sos, audio)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (INPUT_PEAK / peak) if peak > INPUT_PEAK else audio


class VoiceConverter:
    """An RVC voice model with its content encoder: :meth:`convert` re-sings a vocal in the model's voice.

    ``chunk_s``, ``context_s`` and ``overlap_s`` bound the work done at once (see the module's
    docstring); :meth:`with_chunking` gives a converter sharing the models with other values.
    """

    def __init__(
        self,
        info: VoiceModelInfo,
        synthesizer: Any,
        encoder: _ContentEncoder,
        *,
        chunk_s: float = CHUNK_S,
        context_s: float = CONTEXT_S,
        overlap_s: float = OVERLAP_S,
    ):
        if not (chunk_s > 0 and context_s >= 0 and overlap_s >= 0 and 2 * overlap_s < chunk_s):
            raise ParameterError(
                f"chunking chunk_s={chunk_s}, context_s={context_s}, overlap_s={overlap_s}: "
                "chunk_s must be positive and more than twice overlap_s, the others not negative"
            )
        self.info = info
        self.synthesizer = synthesizer
        self.encoder = encoder
        self.chunk_s, self.context_s, self.overlap_s = float(chunk_s), float(context_s), float(overlap_s)
        self._lock = threading.Lock()

    def with_chunking(
        self, chunk_s: float = CHUNK_S, context_s: float = CONTEXT_S, overlap_s: float = OVERLAP_S
    ) -> VoiceConverter:
        return VoiceConverter(
            self.info, self.synthesizer, self.encoder, chunk_s=chunk_s, context_s=context_s, overlap_s=overlap_s
        )

    def __repr__(self) -> str:
        return f"VoiceConverter({self.info.name!r}, {self.info.version}, {self.info.sample_rate} Hz)"

    def convert(
        self,
        samples: np.ndarray,
        sample_rate: int,
        f0_hz: np.ndarray,
        f0_times: np.ndarray,
        semitones: float = 0.0,
        seed: int = 0,
        progress: Callable[[float, str], None] | None = None,
    ) -> np.ndarray:
        """The vocal ``samples`` re-sung in this model's voice.

        Args:
            samples: float32 audio [shape=(channels, frames)]; the mid is converted.
            sample_rate: its rate (Hz).
            f0_hz: the vocal's pitch per analysis frame (Hz; 0 where unvoiced).
            f0_times: the time (s) of each f0 value, increasing.
            semitones: transpose the pitch by this much (also fractional).
            seed: the random draws; the same seed gives the same audio.
            progress: told ``(fraction done, words)`` after each chunk, the words with the
                time left at the pace so far ("voice model Freya: part 2 of 9, about 4 min
                left"): on a CPU a whole song takes minutes.

        Returns:
            float32 audio of the same shape and rate: the converted mid in every channel.
        """
        import soxr
        import torch

        samples = _check_samples(samples, sample_rate)
        channels, frames = samples.shape
        if frames == 0:
            return np.zeros_like(samples, dtype=np.float32)
        audio = _input16(samples, sample_rate)
        n_frames = max(1, math.ceil(audio.size / HOP))
        f0 = f0_on_grid(f0_hz, f0_times, n_frames, semitones)  # checked even where the model takes no pitch
        if not self.info.f0:
            f0 = np.zeros(n_frames)
        chunks = self._plan(audio)

        pad = round(self.context_s * FRAME_RATE)
        audio = np.pad(audio, (0, n_frames * HOP - audio.size))
        mode = "reflect" if n_frames > pad else "constant"
        audio = np.pad(audio, (pad * HOP, pad * HOP), mode=mode).astype(np.float32)
        f0 = np.pad(f0, (pad, pad), mode=mode)
        phase_at = np.concatenate([[0.0], np.cumsum(f0 / FRAME_RATE)]) % 1.0  # cycles before each frame

        out_rate = int(sample_rate)

        def position(frame: int) -> int:  # caller-rate sample where an (unpadded) frame starts
            return min(max(round(frame * out_rate / FRAME_RATE), 0), frames)

        out = np.zeros(frames, dtype=np.float64)
        total = sum(stop - start for start, stop in chunks)
        done, started = 0, time.monotonic()
        with self._lock, torch.inference_mode():
            for number, (start, stop) in enumerate(chunks):
                first, last = position(start), position(stop)
                if last <= first:
                    continue
                if progress is not None and number:
                    progress(done / total, self._pace(number, len(chunks), done, total, time.monotonic() - started))
                done += stop - start
                wave = self._chunk(audio, f0, phase_at, start, stop + 2 * pad, seed)  # padded frame indices
                if self.info.sample_rate != out_rate:
                    wave = soxr.resample(wave, self.info.sample_rate, out_rate, quality="HQ")
                local = first - round((start - pad) * out_rate / FRAME_RATE)  # the context before
                piece = wave[local : local + last - first]
                piece = np.pad(piece, (0, last - first - piece.size))
                head = position(chunks[number - 1][1]) - first if number else 0
                tail = last - position(chunks[number + 1][0]) if number + 1 < len(chunks) else 0
                out[first:last] += piece * _fade_weights(last - first, max(head, 0), max(tail, 0))
        if progress is not None:
            progress(1.0, f"voice model {self.info.name}: done")
        peak = float(np.max(np.abs(out)))
        if peak > OUTPUT_PEAK:
            out *= OUTPUT_PEAK / peak
        return np.repeat(out.astype(np.float32)[np.newaxis, :], channels, axis=0)

    def _pace(self, number: int, count: int, done: int, total: int, seconds: float) -> str:
        """Words for the progress after ``number`` of ``count`` chunks: the part and the time left."""
        left = seconds * (total - done) / max(done, 1)
        when = f"about {math.ceil(left / 60)} min left" if left >= 90 else f"about {max(5, round(left / 5) * 5)} s left"
        return f"voice model {self.info.name}: part {number + 1} of {count}, {when}"

    def chunks(self, samples: np.ndarray, sample_rate: int) -> list[tuple[int, int]]:
        """The frame ranges (100 frames per second) :meth:`convert` processes ``samples`` in, overlaps included."""
        samples = _check_samples(samples, sample_rate)
        return self._plan(_input16(samples, sample_rate)) if samples.shape[1] else []

    def _plan(self, audio16: np.ndarray) -> list[tuple[int, int]]:
        n_frames = max(1, math.ceil(audio16.size / HOP))
        level = np.abs(np.pad(audio16, (0, n_frames * HOP - audio16.size))).reshape(n_frames, HOP).sum(1)
        return plan_chunks(
            np.convolve(level, np.ones(5), mode="same"),
            round(self.chunk_s * FRAME_RATE),
            round(self.overlap_s * FRAME_RATE),
            round(CUT_SEARCH_S * FRAME_RATE),
        )

    def _chunk(
        self, audio: np.ndarray, f0: np.ndarray, phase_at: np.ndarray, start: int, stop: int, seed: int
    ) -> np.ndarray:
        """The model's output for padded frames ``start..stop`` [shape=((stop - start) * upp,)] at its rate."""
        import torch
        import torch.nn.functional as F

        synthesizer, version = self.synthesizer, self.info.version
        length = stop - start
        upp = synthesizer.upp
        wave16 = torch.from_numpy(audio[start * HOP : stop * HOP]).unsqueeze(0)
        if wave16.shape[1] < 400:  # HuBERT's first window
            wave16 = F.pad(wave16, (0, 400 - wave16.shape[1]))
        feats = self.encoder.features(wave16, version)
        feats = F.interpolate(feats.transpose(1, 2), scale_factor=2).transpose(1, 2)  # 50 -> 100 frames/s
        if feats.shape[1] < length:
            feats = F.pad(feats.transpose(1, 2), (0, length - feats.shape[1]), mode="replicate").transpose(1, 2)
        feats = feats[:, :length].float()
        lengths = torch.tensor([length], dtype=torch.long)
        sid = torch.zeros(1, dtype=torch.long)
        prior_noise = _indexed_noise(seed, 1, start, stop, synthesizer.enc_p.out_channels, _NOISE_BLOCK).unsqueeze(0)
        pitch = nsff0 = source = None
        if self.info.f0:
            chunk_f0 = f0[start:stop]
            pitch = torch.from_numpy(coarse_f0(chunk_f0)).unsqueeze(0)
            nsff0 = torch.from_numpy(chunk_f0.astype(np.float32)).unsqueeze(0)
            per_sample = np.repeat(chunk_f0, upp)
            phase = (phase_at[start] + np.cumsum(per_sample / self.info.sample_rate)) % 1.0
            uv = torch.from_numpy((per_sample > 0).astype(np.float32)).unsqueeze(0)
            noise = _indexed_noise(seed, 2, start * upp, stop * upp, 1, _NOISE_BLOCK * upp)
            source = (torch.from_numpy(phase.astype(np.float32)).unsqueeze(0), uv, noise)
        wave = synthesizer.infer(feats, lengths, pitch, nsff0, sid, prior_noise=prior_noise, source=source)
        return wave[0, 0].double().numpy()
