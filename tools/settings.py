"""Engine settings: one frozen object read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ParameterError

__all__ = ["Settings", "get_settings"]


def _default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("remix-assistant", appauthor=False))


def _env_float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ParameterError(f"{name}={raw!r} must be a number") from None
    if value <= 0:
        raise ParameterError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the engine reads from its environment.

    Attributes:
        data_dir: sessions, renders and caches (``REMIX_DATA_DIR``).
        models_dir: local model weights (``REMIX_MODELS_DIR``, default ``data_dir/models``).
        max_upload_mb: largest accepted input file (``REMIX_MAX_UPLOAD_MB``, default 200).
        max_duration_s: longest accepted input (``REMIX_MAX_DURATION_S``, default 1200 = 20 min).
        separator: separation backend (``REMIX_SEPARATOR``, default ``auto``).
        stage_cache_mb: disk budget for cached render stages (``REMIX_STAGE_CACHE_MB``).
        stems_cache_mb: disk budget for cached stems (``REMIX_STEMS_CACHE_MB``, default 4096:
            a 3-minute song's four stems take 100-250 MB); the songs least recently used go
            first, and separate again when opened again.
        generator: genre-shift backend (``REMIX_GENERATOR``: ``auto``, ``musicgen`` or ``dsp``);
            ``auto`` uses MusicGen melody when its weights are on disk, the DSP grooves otherwise.
        llm_model: chat model for the planner (``REMIX_LLM_MODEL``); the LLM planner is used
            when this and a key or a base URL are set, the offline planner otherwise.
        openai_api_key: ``OPENAI_API_KEY`` (kept out of reprs).
        openai_base_url: ``OPENAI_BASE_URL``: any OpenAI-compatible server (Ollama, vLLM, llama.cpp).
        llm_timeout_s: seconds to wait for the model before falling back (``REMIX_LLM_TIMEOUT_S``).
        retention_days: rendered audio not played or changed for this many days is removed
            (``REMIX_RETENTION_DAYS``, default 30; 0 keeps everything); recipes (specs) are
            never removed, so every version can be rendered again bit-identically.
        sign: sign every export with a C2PA manifest where its format allows (``REMIX_SIGN``,
            default on; ``0``, ``false``, ``no`` or ``off`` turn it off, and the credits then
            travel in the file's tags and its sidecar only).
    """

    data_dir: Path = field(default_factory=_default_data_dir)
    models_dir: Path | None = None
    max_upload_mb: float = 200.0
    max_duration_s: float = 1200.0
    separator: str = "auto"
    stage_cache_mb: float = 2048.0
    stems_cache_mb: float = 4096.0
    generator: str = "auto"
    llm_model: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    llm_timeout_s: float = 20.0
    retention_days: float = 30.0
    sign: bool = True

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        data_dir = Path(env["REMIX_DATA_DIR"]).expanduser() if env.get("REMIX_DATA_DIR") else _default_data_dir()
        models_dir = Path(env["REMIX_MODELS_DIR"]).expanduser() if env.get("REMIX_MODELS_DIR") else None
        return cls(
            data_dir=data_dir,
            models_dir=models_dir,
            max_upload_mb=_env_float(env, "REMIX_MAX_UPLOAD_MB", 200.0),
            max_duration_s=_env_float(env, "REMIX_MAX_DURATION_S", 1200.0),
            separator=env.get("REMIX_SEPARATOR") or "auto",
            stage_cache_mb=_env_float(env, "REMIX_STAGE_CACHE_MB", 2048.0),
            stems_cache_mb=_env_float(env, "REMIX_STEMS_CACHE_MB", 4096.0),
            generator=(env.get("REMIX_GENERATOR") or "auto").strip().lower(),
            llm_model=env.get("REMIX_LLM_MODEL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            llm_timeout_s=_env_float(env, "REMIX_LLM_TIMEOUT_S", 20.0),
            retention_days=_env_float(env, "REMIX_RETENTION_DAYS", 30.0),
            sign=(env.get("REMIX_SIGN") or "1").strip().lower() not in ("0", "false", "no", "off"),
        )

    @property
    def llm_configured(self) -> bool:
        """True when an LLM planner can be tried: a model name and a key or a server address."""
        return bool(self.llm_model and (self.openai_api_key or self.openai_base_url))

    @property
    def models_path(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


def get_settings() -> Settings:
    """Settings from the current environment (read fresh each call; cheap)."""
    return Settings.from_env()
