"""Naming rules: from the FBI's agency names to what people write in posts.

The FBI Crime Data Explorer lists agencies under administrative names ("Clinton Police Department",
"Highway Patrol: Los Angeles County", "University of Arkansas:"); people write "Clinton PD", "CHP",
"University of Arkansas Police".  These rules are written once, per agency type, and used both by the
generator of the registry file (``scripts/build_agency_registry.py``: cleaning, kinds, which rows are
police) and by the loader (match terms), so the tests of this module cover both.
"""

from __future__ import annotations

import re

#: FBI ``agency_type`` -> registry ``kind``.
FBI_KINDS: dict[str, str] = {
    "City": "municipal",
    "County": "sheriff",
    "State Police": "state",
    "University or College": "campus",
    "Tribal": "tribal",
    "Other State Agency": "special",
    "Other": "special",
}

#: Rows whose name says they are not a police force (prosecutors, fire investigators, task forces,
#: hospitals, parks...): kept in the registry (known, with their ORI) but not matched by default.
_NOT_POLICE_RE = re.compile(
    r"\b(district attorney|attorney general|prosecut\w*|fire|arson|task force|drug|narcotic\w*|hospital|"
    r"developmental center|parks and recreation|commission|board|coroner|medical examiner|"
    r"corrections?|correctional|probation|parole|investigation unit|investigative unit|"
    r"constable district|crime lab\w*|training center|information center|enforcement unit|"
    r"enforcement section|enforcement division|lottery|insurance|revenue|alcohol\w*|wildlife|"
    r"natural resources|forestry|conservation|fish and game|game and fish|inspector general)\b",
    re.IGNORECASE,
)
#: Words that make a name a police force for the "Other" types (airports, railways, transit...).
_POLICE_WORD_RE = re.compile(r"\b(police|sheriff'?s?|marshal'?s? office|public safety|patrol|troopers?)\b",
                             re.IGNORECASE)

#: Place names that are everyday words: "Normal police" is not news about Normal, Illinois, so such
#: places get only their full "... Police Department" name as a term, never "X Police" / "X PD".
COMMON_WORD_PLACES: frozenset[str] = frozenset(
    w.lower() for w in (
        "Normal Commerce Industry Justice Union Liberty Independence Mission Hope Friendship Security "
        "Victory Progress Energy Federal Central Metro Transit Campus University College Village Town City "
        "Airport Park Harbor Port Capitol Marine Reserve Lake River Beach Story Rich "
        "Pleasant Fairview Midway Center Enterprise Delta Alpha Omega Unity Harmony Eden "
        "Paradise Ideal Plain Plains Sharp Smart Strong Young Wise Best Good Golden Sandy Rocky "
        "Eagle Hawk Bear Wolf Fox Deer Beaver Temple Church Chapel Cross Nation Tribal State "
        "County Home Holiday Christmas Easter Summer Winter Spring Springs Fall Falls North South East West "
        "Bay Hill Hills Valley Grove Garden Gardens Heights Mountain View Vista Division Transport Mall"
    ).split()
)

_STATE_UNIT_RE = re.compile(
    r"^(?P<force>State Police|Highway Patrol|State Patrol|State Highway Patrol|State Troopers)\b", re.IGNORECASE
)


def clean_name(fbi_name: str, agency_type: str) -> str:
    """The FBI name tidied to what the agency calls itself.

    Trailing colons go ("University of Arkansas:"), "X: Campus" becomes "X Campus" for colleges,
    doubled suffixes are undone ("... Police Department Police Department"), and a bare town name
    (the FBI lists some City rows as just "Concord") gets its "Police Department".
    """
    name = " ".join(fbi_name.replace("\u2019", "'").split()).rstrip(":").strip()
    for suffix in ("Police Department", "Sheriff's Office"):
        doubled = f"{suffix} {suffix}"
        if name.endswith(doubled):
            name = name[: -len(doubled)] + suffix
    name = re.sub(r"Police Department Police Department$", "Police Department", name)
    name = re.sub(r"(Metropolitan Police Department) Police Department$", r"\1", name)
    if agency_type == "University or College" and ":" in name:
        head, _, tail = name.partition(":")
        name = f"{head.strip()} {tail.strip()}".strip()
    if agency_type == "City" and not _POLICE_WORD_RE.search(name) and not _NOT_POLICE_RE.search(name):
        name = f"{name} Police Department"
    return name


def is_police(name: str, agency_type: str) -> bool:
    """Whether posts naming this row should be attributed to it (False: known but not matched)."""
    if _NOT_POLICE_RE.search(name):
        return False
    if agency_type in ("Other", "Other State Agency"):
        return bool(_POLICE_WORD_RE.search(name))
    return True


def state_unit_force(fbi_name: str) -> str | None:
    """For a per-county/troop state-police row ("State Police: Albany County"), the force's name."""
    m = _STATE_UNIT_RE.match(fbi_name.strip())
    if m is None or (":" not in fbi_name and fbi_name.strip().lower() != m.group("force").lower()):
        return None
    return " ".join(w.capitalize() for w in m.group("force").split())


def _place_forms(place: str) -> bool:
    """Whether the short forms ("X Police", "X PD") are safe for this place name."""
    words = place.split()
    return bool(words) and not (len(words) == 1 and words[0].lower() in COMMON_WORD_PLACES)


def match_terms(name: str, kind: str) -> list[str]:
    """The phrases that name this agency in posts, by the rule for its type (name first).

    - "Clinton Police Department" -> "Clinton Police Department", "Clinton Police", "Clinton PD"
    - "Lee County Sheriff's Office" -> "... Sheriff's Office", "... Sheriff's Department", "... Sheriff"
    - colleges and tribal forces without a police word -> "X Police", "X Police Department"
      ("University of Arkansas" -> "University of Arkansas Police"): the bare university name is the
      university, not its police.
    - everything else (state police, "Department of Public Safety", marshals) -> the name itself.
    """
    terms: list[str] = []
    m = re.match(r"^(?P<base>.+?) (?:Police Department|Police Dept\.?|Police)$", name)
    s = re.match(r"^(?P<base>.+?) Sheriff(?:'s)? (?:Office|Department)$", name)
    if m and kind in ("municipal", "sheriff", "special", "tribal", "campus", "transit"):
        base = m.group("base")
        terms = [name, f"{base} Police Department", f"{base} Police Dept"]
        if _place_forms(base):
            terms += [f"{base} Police", f"{base} PD"]
    elif s:
        base = s.group("base")
        terms = [name, f"{base} Sheriff's Office", f"{base} Sheriff's Department", f"{base} Sheriff",
                 f"{base} Sheriffs Office"]
        if base.endswith((" County", " Parish")):
            terms += [f"{base} deputies", f"{base} deputy", f"{base} Sheriff's deputies"]
    elif kind in ("campus", "tribal") and not _POLICE_WORD_RE.search(name):
        terms = [f"{name} Police", f"{name} Police Department"]
        if kind == "campus":
            terms += [f"{name} Police Dept", f"{name} Campus Police"]
    else:
        terms = [name]
    return list(dict.fromkeys(terms))


_GENERIC_NAME_WORDS = frozenset(
    "department of public safety state police capitol highway patrol division bureau investigation office "
    "services the and for law enforcement security protection marshal's marshals marshal service general".split()
)


def is_placeless(name: str) -> bool:
    """Whether a name says nowhere where it is ("State Capitol Police", "Department of Public Safety"):
    such a name is every state's, so it is matched only with the state's name in front."""
    return not {w.lower() for w in re.findall(r"[\w']+", name)} - _GENERIC_NAME_WORDS


def slugify(text: str) -> str:
    """Lowercase letters, digits and '-' (the registry's slug alphabet)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "")).strip("-")
