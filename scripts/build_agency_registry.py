"""Generate ``agencies/us_agencies_fbi.csv.gz`` from the FBI Crime Data Explorer agency list.

Usage: python scripts/build_agency_registry.py CSV [--out agencies/us_agencies_fbi.csv.gz]
       (CSV: the shared data folder's us_agencies_fbi_cde.csv; needs ``pip install -e ".[registry]"``)

What it does, so the output is reproducible and reviewable:
- cleans names with ``trustwatch.collectors.agencies.naming`` (trailing colons, doubled suffixes);
- maps the FBI type to the registry kind, and marks non-police rows (prosecutors, fire investigators,
  task forces, parks, hospitals) as known but not matched;
- groups per-county/troop state-police and highway-patrol rows under one parent per state (units keep
  their ORI; ``parent`` names the parent's slug; a curated state agency of that state is the parent);
- derives the IANA timezone from the coordinates (timezonefinder), else from the state;
- gives sheriffs the towns of their county as settling words (``places``);
- writes a deterministic gzip-compressed CSV (sorted by ORI, fixed gzip mtime).
Curated entries (``agencies/*.yaml``) are merged with these rows by ORI at load time.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trustwatch.collectors.agencies.naming import (  # noqa: E402
    FBI_KINDS,
    clean_name,
    is_police,
    slugify,
    state_unit_force,
)
from trustwatch.collectors.agencies.registry import STATE_TIMEZONES, US_STATES  # noqa: E402

FIELDS = ("ori", "slug", "name", "fbi_name", "agency_type", "kind", "state", "county", "latitude", "longitude",
          "nibrs", "timezone", "parent", "matched", "places")

#: The FBI codes Nebraska "NB" (its pre-1963 abbreviation); everything else uses USPS codes.
STATE_FIXES = {"NB": "NE"}



def _curated(registry_dir: Path) -> tuple[set[str], dict[str, str]]:
    """ORIs of curated entries, and the curated state-police slug per state."""
    oris: set[str] = set()
    state_parent: dict[str, str] = {}
    for path in sorted(registry_dir.glob("*.yaml")):
        for e in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("agencies", []):
            for ori in e.get("oris") or ([e["ori"]] if e.get("ori") else []):
                oris.add(ori)
            if e.get("kind") == "state" and e.get("state"):
                state_parent.setdefault(e["state"], e["slug"])
    return oris, state_parent


def build(csv_path: Path, registry_dir: Path) -> list[dict[str, str]]:
    """The generated rows, sorted by ORI (parents without an FBI row first in their state)."""
    from timezonefinder import TimezoneFinder

    tf = TimezoneFinder(in_memory=True)
    _, curated_parent = _curated(registry_dir)
    with csv_path.open(encoding="utf-8", newline="") as fh:
        raw = list(csv.DictReader(fh))
    out: list[dict[str, str]] = []
    slugs: set[str] = set()
    towns: dict[tuple[str, str], list[str]] = defaultdict(list)
    parents: dict[str, dict[str, str]] = {}
    for r in raw:
        state = STATE_FIXES.get(r["state_abbr"], r["state_abbr"])
        name = clean_name(r["agency_name"], r["agency_type"])
        kind = FBI_KINDS.get(r["agency_type"], "special")
        lat, lon = r["latitude"].strip(), r["longitude"].strip()
        tz = ""
        if lat and lon:
            tz = tf.timezone_at(lng=float(lon), lat=float(lat)) or ""
        tz = tz or STATE_TIMEZONES.get(state, "America/New_York")
        county = " ".join(w.capitalize() for w in r["county"].split()) if r["county"].strip() else ""
        matched = is_police(name, r["agency_type"])
        parent = ""
        force = state_unit_force(r["agency_name"]) if r["agency_type"] == "State Police" else None
        if force is not None:
            # "State Police: Albany County": a unit of the state's force, which is what people name.
            parent = curated_parent.get(state) or slugify(f"{US_STATES.get(state, state)} {force}")
            if parent not in parents and state not in curated_parent:
                parents[parent] = {
                    "ori": "", "slug": parent, "name": f"{US_STATES.get(state, state)} {force}", "fbi_name": "",
                    "agency_type": "State Police", "kind": "state", "state": state, "county": "",
                    "latitude": "", "longitude": "", "nibrs": "", "timezone": STATE_TIMEZONES.get(state, tz),
                    "parent": "", "matched": "1", "places": "",
                }
            matched = False
        slug = f"{state.lower()}-{slugify(name)}"[:64].strip("-")
        if slug in slugs:
            slug = f"{slug[:54].strip('-')}-{r['ori'].lower()}"
        slugs.add(slug)
        if kind == "municipal" and county and name.endswith("Police Department"):
            towns[(state, county)].append(name[: -len(" Police Department")])
        out.append({
            "ori": r["ori"], "slug": slug, "name": name, "fbi_name": r["agency_name"],
            "agency_type": r["agency_type"], "kind": kind, "state": state, "county": county,
            "latitude": lat, "longitude": lon, "nibrs": r["nibrs"], "timezone": tz, "parent": parent,
            "matched": "1" if matched else "0", "places": "",
        })
    # A statewide row ("Arkansas State Police") is the parent itself when its name is the force's.
    by_name = {(o["state"], o["name"]): o for o in out}
    for slug, p in list(parents.items()):
        existing = by_name.get((p["state"], p["name"]))
        if existing is not None:
            for o in out:
                if o["parent"] == slug:
                    o["parent"] = existing["slug"]
            del parents[slug]
    for o in out:
        if o["kind"] == "sheriff" and o["county"]:
            o["places"] = ";".join(sorted(set(towns.get((o["state"], o["county"]), []))))
    for slug in slugs & set(parents):
        raise SystemExit(f"parent slug {slug} collides with an agency slug")
    return list(parents.values()) + out


def write(rows: list[dict[str, str]], out: Path) -> None:
    """A gzip CSV with a fixed mtime, so the same input gives the same bytes."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with out.open("wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, help="the FBI CDE agency list (us_agencies_fbi_cde.csv)")
    ap.add_argument("--out", type=Path, default=ROOT / "agencies" / "us_agencies_fbi.csv.gz")
    args = ap.parse_args(argv)
    rows = build(args.csv, ROOT / "agencies")
    write(rows, args.out)
    print(f"{len(rows)} rows -> {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
