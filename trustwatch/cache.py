"""A small on-disk cache for what every Airflow task process would otherwise recompute from the same files.

Every Airflow task is a fresh process.  What it derives from files shipped with trustwatch (the parsed
agency registry and its matcher, the schema revision the migrations end at) is the same in every task, so it
is pickled once under a name that is the SHA-256 of everything it is made from: a changed input gives
another name, and a stale entry is never read, only not found.

The folder is ``TRUSTWATCH_CACHE_DIR`` (``off`` disables the cache), else ``$XDG_CACHE_HOME/trustwatch``,
else ``~/.cache/trustwatch``.  A pickle runs code when loaded, so only a folder owned by the current user and
writable by nobody else is used; anything wrong with the folder (missing rights, a full disk) falls back to
computing, never to an error.
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Bumped when the cache's own layout changes.
CACHE_FORMAT = "1"
_OFF = {"", "0", "off", "none", "no", "false"}


def files_digest(salt: str, groups: Iterable[tuple[str, Iterable[Path]]]) -> str:
    """SHA-256 of ``salt`` and, per labelled group, each file's name and bytes (in the order given)."""
    digest = hashlib.sha256(f"trustwatch-cache/{CACHE_FORMAT}/py{sys.version_info[:2]}/{salt}".encode())
    for label, paths in groups:
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
        log.info("cache folder %s not usable (%s): computing instead", folder, exc)
        return False
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.warning("cache folder %s is not private to this user: not used", folder)
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
        log.warning("cache file %s unreadable (%s): rebuilding it", path.name, exc)
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
        log.info("cache file %s not written (%s)", path.name, exc)
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
