"""descentlab's compiled CPU kernels (``csrc/kernels.cpp``), built once on first use and cached.

The kernels (one per algorithm that torch has no fused kernel for, the SGD family's, and
Lookahead's synchronisation) are compiled with ``torch.utils.cpp_extension.load`` the first time
an optimizer needs them: about a minute once per machine and torch version, then loaded from
torch's extension cache (``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) in
well under a second. ``descentlab build-kernels`` pays the build ahead of time.

When they cannot be built (no C++ compiler, no ninja, a failed build), :func:`unavailable_reason`
says why, and the optimizers take another path (``impl="auto"``, with one warning) or raise
(``impl="fused"``). Nothing here ever crashes an import, and ``torch.utils.cpp_extension`` is
imported only when the cache is looked at or a build runs (on a CUDA build of torch without a
GPU its import logs "No CUDA runtime is found", which says nothing about CPU kernels: muted).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from types import ModuleType

import torch

__all__ = [
    "build",
    "build_directory",
    "clear_stale_lock",
    "generated",
    "kernels",
    "ready",
    "unavailable_reason",
]

SOURCE = Path(__file__).with_name("csrc") / "kernels.cpp"
RUNTIME = SOURCE.with_name("runtime.h")  # shared with the kernels generated from rules

# -O3 vectorizes the per-element loops; -fno-math-errno lets sqrt vectorize; OpenMP runs
# at::parallel_for on torch's own thread pool (the process already holds torch's libgomp). No
# fused multiply-adds: the kernels keep the order of the rules' operations, so that they round
# as the readable path (the rules run with torch's ops) does.
_CFLAGS = ["-O3", "-fno-math-errno", "-fopenmp", "-ffp-contract=off"]
# Instruction sets by the CPU capability torch detected; the extension's name carries the
# capability, so a shared cache never hands AVX2 code to an older CPU.
_ARCH_FLAGS = {"AVX2": ["-mavx2", "-mfma", "-mf16c"], "AVX512": ["-mavx2", "-mfma", "-mf16c"]}

_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None


def _cpp_extension() -> ModuleType:
    """``torch.utils.cpp_extension``, imported without its CUDA-runtime warning."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import torch.utils.cpp_extension as extension
    finally:
        log.setLevel(level)
    return extension


def _capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def _name() -> str:
    """The extension's name: the CPU capability and a digest of what the build depends on (the
    source, the flags, torch's version), so that a cached build is never a stale one."""
    return f"descentlab_cpu_{_capability().lower()}_{_digest()}"


@functools.cache
def _digest() -> str:
    sources, header = _bundled()
    return _hash(SOURCE.read_bytes() + "".join([*sources, header]).encode(), _flags())


# sources the generated rules are shared out over: the build compiles them in parallel
_RULE_SOURCES = 3


@functools.cache
def _bundled() -> tuple[list[str], str]:
    """The C++ generated from descentlab's own optimizers' rules, built into this extension
    (``kernels.cpp`` includes the header that binds them): every algorithm in one build."""
    from .._rules.rule import bundled

    return bundled(_RULE_SOURCES)


def _flags() -> list[str]:
    return [*_CFLAGS, *_ARCH_FLAGS.get(_capability(), [])]


def _hash(source: bytes, flags: list[str]) -> str:
    """What a build depends on: its source, the shared runtime, the flags, torch's version."""
    text = source + RUNTIME.read_bytes() + repr([*flags, torch.__version__]).encode()
    return hashlib.sha256(text).hexdigest()[:12]


def build_directory() -> Path:
    """Where torch caches the built kernels for this machine (created if missing)."""
    return Path(_cpp_extension()._get_build_directory(_name(), verbose=False))


STALE_LOCK_SECONDS = 600.0  # a build takes about a minute; an older lock was left by a killed one


def clear_stale_lock(
    directory: Path, *, max_age: float = STALE_LOCK_SECONDS, name: str = "lock"
) -> bool:
    """Remove the build lock (or another marker ``name``) a killed build left behind (torch
    waits on its lock forever).

    Returns whether a lock older than ``max_age`` seconds was removed.
    """
    lock = directory / name
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age <= max_age:
        return False
    logging.getLogger(__name__).warning(
        "descentlab: removing a stale kernel build lock (%.0f s old): %s", age, lock
    )
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    return True


# What the process that builds says, once per build whatever the number of processes that wait
# for it (the lab's workers), each line within 80 columns.
BUILDING = (
    "descentlab: building the CPU kernels, once per machine (about a minute);\n"
    "`descentlab build-kernels` builds them ahead of time"
)


def _announce(directory: Path) -> Path | None:
    """Say :data:`BUILDING` if no other process has said it for this build: the process that
    creates the marker file says it (and removes the marker when its build ends)."""
    marker = directory / "announced"
    clear_stale_lock(directory, name=marker.name)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    except OSError:  # a read-only cache: say it anyway
        marker = None
    logging.getLogger(__name__).warning(BUILDING)
    return marker


def _load(verbose: bool = False) -> ModuleType:
    directory = build_directory()
    sources, header = _bundled()
    _write(directory / "rules.h", header)  # kernels.cpp includes it
    rules = [_write(directory / f"rules_{k}.cpp", c) for k, c in enumerate(sources)]
    return _load_extension(_name(), directory, [SOURCE, *rules], _flags(), verbose)


def _write(path: Path, source: str) -> Path:
    """Write generated ``source`` to ``path``, atomically (never half-written for another
    process), unless it is there already."""
    if not path.exists() or path.read_text() != source:
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(source)
        os.replace(partial, path)
    return path


def _load_extension(
    name: str, directory: Path, sources: list[Path], flags: list[str], verbose: bool
) -> ModuleType:
    if (directory / f"{name}.so").exists():
        # Built (its name carries the digest of its source and flags): imported as it is.
        # torch's load() would take the build lock to run a no-op ninja in every new process;
        # a process killed in that window (the lab's workers are) leaves the lock behind, and
        # every later process waits on it forever.
        return _cpp_extension()._import_module_from_library(name, str(directory), True)
    clear_stale_lock(directory)
    marker = _announce(directory)
    try:
        return _cpp_extension().load(
            name=name,
            sources=[str(s) for s in sources],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            extra_include_paths=[str(RUNTIME.parent), str(directory)],
            verbose=verbose,
        )
    finally:
        if marker is not None:
            with contextlib.suppress(OSError):
                marker.unlink()


_generated: dict[str, ModuleType] = {}
_failed: dict[str, str] = {}  # why a build failed, by extension name


def generated(stem: str, source: str, *, verbose: bool = False) -> ModuleType:
    """The extension built from generated C++ ``source`` (an optimizer's rule), built on first
    use and cached like the hand-written kernels; ``RuntimeError`` when it cannot be built."""
    flags = _flags()
    name = f"descentlab_{stem}_{_capability().lower()}_{_hash(source.encode(), flags)}"
    with _lock:
        if name in _generated:
            return _generated[name]
        if name in _failed or os.environ.get("DESCENTLAB_KERNELS", "1") == "0":
            reason = _failed.get(name, "disabled by DESCENTLAB_KERNELS=0")
            raise RuntimeError(f"descentlab: {stem}'s kernel cannot be built: {reason}")
        try:
            directory = Path(_cpp_extension()._get_build_directory(name, verbose=False))
            path = _write(directory / f"{name}.cpp", source)
            _generated[name] = _load_extension(name, directory, [path], flags, verbose)
        except Exception as exc:  # remembered: a failed build is not tried again
            _failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
            raise RuntimeError(
                f"descentlab: {stem}'s kernel cannot be built: {_failed[name]}"
            ) from exc
        return _generated[name]


def build(*, verbose: bool = False) -> ModuleType:
    """Build (or load from the cache) the kernels now; raises ``RuntimeError`` if impossible."""
    global _module, _error
    with _lock:
        if _module is None:
            try:
                _module = _load(verbose)
                _error = None
            except Exception as exc:  # any build failure means "take another path"
                _error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
                raise RuntimeError(f"descentlab kernels could not be built: {_error}") from exc
        return _module


def unavailable_reason() -> str | None:
    """Why the compiled kernels cannot be used here, or ``None`` when they can.

    The first call builds them (or loads them from torch's cache); the answer is remembered
    for the life of the process.
    """
    global _error
    if _module is None and _error is None:
        if os.environ.get("DESCENTLAB_KERNELS", "1") == "0":
            _error = "disabled by DESCENTLAB_KERNELS=0"
            return _error
        with contextlib.suppress(RuntimeError):  # the reason is kept in _error
            build()
    return _error


def ready() -> ModuleType | None:
    """The kernels when they are loaded or sit built in the cache (then loaded), else ``None``.

    Never triggers a build: for the algorithms whose math torch's fused kernels also have
    (the SGD family) the compiled kernels are only the faster of two fast paths.
    """
    if _module is None and _error is None and (build_directory() / f"{_name()}.so").exists():
        unavailable_reason()  # loads from the cache (a fraction of a second)
    return _module


def kernels() -> ModuleType:
    """The loaded kernel module (building it if needed)."""
    return _module if _module is not None else build()
