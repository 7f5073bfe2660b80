"""llama.cpp's own converter, taken from the llama-cpp-python source release privserve runs.

The installed wheel has only the shared libraries. The source release of the same version
carries `convert_hf_to_gguf.py`, its `conversion/` package and `gguf-py/` from the same
llama.cpp commit as the runtime, so files it writes are files the runtime reads. It is
fetched once (pip download, or a file given with --sdist), and the converter files alone are
kept, with llama.cpp's MIT licence, in PRIVSERVE_HOME/tools/.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from privserve.errors import ConversionError

PACKAGE = "llama-cpp-python"
# What is kept from the release, relative to its vendor/llama.cpp/.
KEPT = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/", "LICENSE")
DONE_MARKER = ".complete"


@dataclass(frozen=True)
class Toolkit:
    root: Path


def runtime_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConversionError(
            "converting needs llama-cpp-python: pip install 'privserve[llama,convert]'"
        ) from exc


def ensure_toolkit(tools_dir: Path, sdist: Path | None = None) -> Toolkit:
    """The converter for the installed llama-cpp-python, fetched on first use."""
    version = runtime_version()
    root = tools_dir / f"llama.cpp-converter-{version}"
    if (root / DONE_MARKER).is_file():
        return Toolkit(root)
    tools_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tools_dir) as scratch:
        archive = sdist or _download(version, Path(scratch))
        staged = Path(scratch) / "toolkit"
        _extract(archive, version, staged)
        (staged / DONE_MARKER).write_text(version)
        if root.exists():  # a half-made one from an interrupted run
            shutil.rmtree(root)
        staged.rename(root)
    return Toolkit(root)


def _download(version: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={version}"]
    command += ["--no-deps", "--no-binary", ":all:", "--quiet", "--dest", str(into)]
    done = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(into.glob("*.tar.gz"))
    if done.returncode != 0 or not archives:
        raise ConversionError(
            f"could not download the {PACKAGE} {version} source release, which carries "
            f"llama.cpp's converter: {done.stderr.strip()[-500:]}\n"
            f"Without network access, download it elsewhere (pip download {PACKAGE}=={version} "
            "--no-deps --no-binary :all:) and pass the file with --sdist."
        )
    return archives[0]


def _extract(archive: Path, version: str, into: Path) -> None:
    vendor = PurePosixPath(f"llama_cpp_python-{version}", "vendor", "llama.cpp")
    try:
        with tarfile.open(archive) as tar:
            members = []
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if not path.is_relative_to(vendor) or not (member.isfile() or member.isdir()):
                    continue
                relative = path.relative_to(vendor).as_posix()
                if any(relative == k or relative.startswith(k) for k in KEPT):
                    member.name = relative
                    members.append(member)
            if not any(m.name == "convert_hf_to_gguf.py" for m in members):
                raise ConversionError(
                    f"{archive} is not the {PACKAGE} {version} source release "
                    "(no vendor/llama.cpp/convert_hf_to_gguf.py inside)"
                )
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ConversionError(f"cannot read {archive}: {exc}") from exc
