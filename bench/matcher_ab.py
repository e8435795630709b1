"""A/B of the matcher against an earlier revision's, in one process, on the real registry and the bench's posts.

Usage: .venv/bin/python bench/matcher_ab.py --base REV [--posts 50000] [--reps 7]
       valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
           .venv/bin/python bench/matcher_ab.py --base REV --only old|new --posts 20000

The base revision's ``collectors/agencies/matcher.py`` and ``text.py`` are read with ``git show`` and loaded as
modules of their own; both matchers are built from the same registry and must give the same matches and the
same unsettled names post by post.  Timing: per chunk of 500 posts, old and new alternately ``--reps`` times,
the fastest run of each kept (other processes on the machine only slow runs down), summed.  With ``--only``
the script matches the posts once with one matcher through ``itertools.starmap``, so callgrind's
``--toggle-collect=starmap_next`` counts the instructions of matching alone (not the registry or the build).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from itertools import starmap
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trustwatch.collectors.agencies import Matcher, load_registry  # noqa: E402


def base_matcher(rev: str) -> Any:
    """The ``Matcher`` class of revision ``rev``, its text module loaded under another name."""
    folder = Path(tempfile.mkdtemp(prefix="matcher_ab_"))
    modules: dict[str, ModuleType] = {}
    for name in ("text", "matcher"):
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:collectors/agencies/{name}.py"],
                                check=True, capture_output=True, text=True).stdout
        source = source.replace("from trustwatch.collectors.agencies.text import", "from _ab_base_text import")
        path = folder / f"_ab_base_{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"_ab_base_{name}", path)
        assert spec is not None and spec.loader is not None
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[f"_ab_base_{name}"] = modules[name]
        spec.loader.exec_module(modules[name])
    return modules["matcher"].Matcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="revision whose matcher is 'old'")
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--only", choices=("old", "new"), help="match once with one matcher (for callgrind)")
    args = parser.parse_args()
    sys.modules.setdefault("flashtext", ModuleType("flashtext")).KeywordProcessor = object  # type: ignore[attr-defined]
    from matching import make_posts  # bench/matching.py: the same synthetic posts

    registry = load_registry()
    old_class = base_matcher(args.base)
    posts = [(p.text, p.community) for p in make_posts(registry, args.posts)]
    if args.only:
        matcher = (old_class if args.only == "old" else Matcher)(registry)
        deque(starmap(matcher.match, posts), maxlen=0)
        return
    old, new = old_class(registry), Matcher(registry)
    for text, community in posts:
        left_old: list[Any] = []
        left_new: list[Any] = []
        assert [tuple(m) for m in old.match(text, community, left_old)] == [
            tuple(m) for m in new.match(text, community, left_new)], text
        assert [tuple(u) for u in left_old] == [tuple(u) for u in left_new], text
    print(f"same matches and unsettled names on {len(posts):,} posts; load before: {os.getloadavg()[0]:.2f}")
    total = {"old": 0.0, "new": 0.0}
    for i in range(0, len(posts), 500):
        chunk = posts[i:i + 500]
        best = {"old": float("inf"), "new": float("inf")}
        for rep in range(args.reps):
            for name in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                match = (old if name == "old" else new).match
                start = time.perf_counter()
                for text, community in chunk:
                    match(text, community)
                best[name] = min(best[name], time.perf_counter() - start)
        for name in total:
            total[name] += best[name]
    n = len(posts)
    print(f"old {n / total['old']:,.0f} posts/s, new {n / total['new']:,.0f} posts/s, "
          f"old/new {total['old'] / total['new']:.3f}; load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
