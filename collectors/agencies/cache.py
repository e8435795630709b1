"""The parsed registry and its matcher, cached on disk by a digest of the registry files and this code.

Every Airflow task is a fresh process.  Parsing the 18,700-agency registry costs about a CPU second and
building the matcher another; a collect run has several tasks per window, so a backfill paid that hundreds
of times for the same files.  Here the parsed objects are pickled once, under a name that is the SHA-256 of
everything they are made from: the registry files (names and bytes) and the source of this package (the
code that turns files into entries and entries into a matcher).  Editing a registry file, adding one, or
upgrading trustwatch changes the digest, so a stale cache is never read; it is simply not found.

The cache folder is ``TRUSTWATCH_CACHE_DIR`` (``off`` disables the cache), else ``$XDG_CACHE_HOME/trustwatch``,
else ``~/.cache/trustwatch``.  A pickle runs code when loaded, so only a folder owned by the current user and
writable by nobody else is used; anything wrong with the folder (missing rights, a full disk) falls back to
parsing, never to an error.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from trustwatch.collectors.agencies.registry import DEFAULT_REGISTRY_DIR, GENERATED_GLOB, Registry, load_registry

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Bumped when the cache's own layout changes (the digest covers the package's code anyway).
CACHE_FORMAT = "1"
_OFF = {"", "0", "off", "none", "no", "false"}


def registry_files(folder: Path) -> list[Path]:
    """The files ``load_registry`` reads from ``folder``, in its order."""
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) + sorted(folder.glob(GENERATED_GLOB))


def _code_files() -> list[Path]:
    """This package's modules: the code that parses the registry and builds the matcher."""
    return sorted(Path(__file__).parent.glob("*.py"))


def registry_digest(directory: Path | None = None) -> str:
    """SHA-256 of the registry files (names and bytes) and of the code that reads them.

    Two processes that would parse the same registry get the same digest; any edit to a registry file, a
    new or removed file, or another trustwatch version gives another.
    """
    folder = Path(directory) if directory is not None else DEFAULT_REGISTRY_DIR
    digest = hashlib.sha256(f"trustwatch-registry/{CACHE_FORMAT}/py{sys.version_info[:2]}".encode())
    for label, paths in (("data", registry_files(folder)), ("code", _code_files())):
        for path in paths:
            body = path.read_bytes()
            digest.update(f"\0{label}\0{path.name}\0{len(body)}\0".encode())
            digest.update(body)
    return digest.hexdigest()


def cache_dir() -> Path | None:
    """The cache folder from the environment, or None when the cache is switched off."""
    configured = os.environ.get("TRUSTWATCH_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in _OFF else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trustwatch"


def _private_folder(folder: Path) -> bool:
    """Create ``folder`` (mode 0700) if needed; True when it is ours and nobody else may write to it."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        log.info("registry cache %s not usable (%s): parsing the registry", folder, exc)
        return False
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("registry cache %s is not private to this user: not used", folder)
        return False
    return True


def cached(kind: str, digest: str, build: Callable[[], T]) -> T:
    """``build()``'s result from ``<cache>/<kind>-<digest>.pickle``, built and written once when missing.

    Older files of the same kind are removed when a new one is written, so the folder holds one per kind.
    """
    folder = cache_dir()
    if folder is None or not _private_folder(folder):
        return build()
    path = folder / f"{kind}-{digest}.pickle"
    try:
        with path.open("rb") as handle:
            return _load(handle)
    except FileNotFoundError:
        pass
    except Exception as exc:  # a truncated or foreign file: rebuild and replace it
        log.warning("registry cache %s unreadable (%s): rebuilding it", path.name, exc)
    value = build()
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile("wb", dir=folder, prefix=f".{kind}-", delete=False) as handle:
            tmp = Path(handle.name)
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # atomic: a concurrent reader sees no file or the whole file
        for old in folder.glob(f"{kind}-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.info("registry cache %s not written (%s)", path.name, exc)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return value


def _load(handle: BinaryIO) -> Any:
    """Unpickle with the cyclic garbage collector paused: the matcher is ~1.5 million objects, and the
    collections their allocation triggers would double the load time for nothing (none of it is garbage)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return pickle.load(handle)  # noqa: S301 (our own file in a folder only this user can write)
    finally:
        if paused:
            gc.enable()


def load_registry_cached(directory: Path | None = None) -> Registry:
    """``load_registry(directory)``, read from the cache when these files were parsed before."""
    return cached("registry", registry_digest(directory), lambda: load_registry(directory))


def load_matcher_cached(directory: Path | None = None) -> Any:
    """The matcher over the registry of ``directory`` (it carries that registry as ``.registry``)."""
    from trustwatch.collectors.agencies.matcher import Matcher

    digest = registry_digest(directory)
    return cached("matcher", digest, lambda: Matcher(cached("registry", digest, lambda: load_registry(directory))))
