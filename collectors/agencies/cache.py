"""The parsed registry and its matcher, cached on disk by a digest of the registry files and this code.

Parsing the 18,700-agency registry costs about a CPU second and building the matcher another; a collect run
has several tasks per window, each a fresh process, so a backfill paid that hundreds of times for the same
files.  The parsed objects are kept in trustwatch's cache folder (``trustwatch.cache``) under the SHA-256 of
everything they are made from: the registry files (names and bytes) and the source of this package (the code
that turns files into entries and entries into a matcher).  Editing a registry file, adding one, or upgrading
trustwatch changes the digest, so a stale registry is never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustwatch.collectors.agencies.registry import DEFAULT_REGISTRY_DIR, GENERATED_GLOB, Registry, load_registry

from trustwatch.cache import cached, files_digest


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
    return files_digest("registry", [("data", registry_files(folder)), ("code", _code_files())])


def load_registry_cached(directory: Path | None = None) -> Registry:
    """``load_registry(directory)``, read from the cache when these files were parsed before."""
    return cached("registry", registry_digest(directory), lambda: load_registry(directory))


def load_matcher_cached(directory: Path | None = None) -> Any:
    """The matcher over the registry of ``directory`` (it carries that registry as ``.registry``)."""
    from trustwatch.collectors.agencies.matcher import Matcher

    digest = registry_digest(directory)
    return cached("matcher", digest, lambda: Matcher(cached("registry", digest, lambda: load_registry(directory))))
