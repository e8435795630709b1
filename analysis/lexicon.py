"""The trust lexicon: words and phrases that signal trust in, or distrust of, a police agency.

VADER measures general sentiment: "the suspect was shot" reads as negative, "covered up the beating"
hardly at all.  Trust in police shows in a narrower vocabulary (gratitude and praise, protection and
safety, honesty, fairness; or corruption, brutality, misconduct, cover-ups, profiling, lies, neglect).
This module lists that vocabulary with weights, so the trust score says *why* a post counts as trusting
or distrusting, and an analyst can read, dispute and extend the list.

Entry syntax: lower-case words separated by spaces; a trailing ``*`` on the last word matches any ending
("corrupt*" matches corrupt, corruption, corrupted); a space also matches a hyphen ("cover up" matches
"cover-up").  Weights run from -2 (strong distrust) to +2 (strong trust); the scorer sums the weights of
the entries found (longest match first, so "no accountability" wins over "accountability"), flips and
damps a weight after a negation ("not", "never", "don't" ... within three words before), and damps
entries in questions.  Emoji entries are matched as plain substrings.

Change a weight or an entry and bump :data:`LEXICON_VERSION`: it is part of the scorer version stored
with every score, so old and new scores stay comparable side by side.
"""

from __future__ import annotations

#: Part of the scorer version (analysis.scoring.SCORER_VERSION); bump on any change below.
LEXICON_VERSION = "1"

#: Category -> {entry: weight}.  Categories are documentation (docs/ANALYSIS.md) and test groupings.
TRUST_LEXICON: dict[str, dict[str, float]] = {
    # -- trust ---------------------------------------------------------------------------------------
    "gratitude": {
        "thank*": 1.2, "thx": 1.0, "grateful": 1.4, "gratitude": 1.2, "appreciate*": 1.2, "shoutout": 1.0,
        "shout out": 1.0, "kudos": 1.2, "props to": 1.0, "big ups": 1.0, "god bless": 1.0, "🙏": 0.6,
    },
    "praise": {
        "great job": 1.5, "good job": 1.3, "great work": 1.5, "good work": 1.2, "solid work": 1.2,
        "outstanding": 1.3, "amazing job": 1.6, "well done": 1.3, "impressed": 1.0, "impressive": 1.0,
        "hero*": 1.5, "angel*": 1.2, "courage*": 1.3, "brave*": 1.2, "bravery": 1.3, "professional*": 1.2,
        "respect": 1.0, "respectful*": 1.2, "kind": 1.0, "kind of": 0.0, "kindness": 1.2, "patient": 0.8,
        "compassion*": 1.2, "helpful": 1.2, "helped": 0.8, "proud of": 1.2, "restraint": 1.0, "calm*": 0.6,
        "de escalat*": 1.2, "deescalat*": 1.2, "faith in": 0.8, "good experience": 1.0,
        "responded fast": 1.0, "quick response": 1.0, "quickly responded": 1.0, "fast response": 1.0,
        "#backtheblue": 1.5, "back the blue": 1.5, "backtheblue": 1.5, "bluelivesmatter": 1.2, "💙": 0.5,
    },
    "protection": {
        "protect*": 1.0, "kept us safe": 1.4, "keeping us safe": 1.4, "keep us safe": 1.2, "safe": 0.7,
        "stay safe": 0.0, "safer": 0.6, "saved": 1.2, "rescued": 1.2, "rescue": 0.8, "life saving": 1.3,
        "lifesaving": 1.3, "there for us": 1.2, "serve and protect": 1.0, "community policing": 0.8,
    },
    "honesty and fairness": {
        "honest": 1.0, "honesty": 1.0, "transparen*": 1.0, "fair": 0.8, "fairly": 0.8, "trust": 1.2,
        "trustworthy": 1.5, "accountable": 0.6,
    },
    # -- distrust ------------------------------------------------------------------------------------
    "corruption": {
        "corrupt*": -2.0, "bribe*": -1.8, "kickback*": -1.6, "fraud": -1.2, "overtime fraud": -1.8,
        "scandal*": -1.4, "rigged": -1.4, "quota*": -1.0, "ticket trap": -1.0, "deputy gang*": -1.8,
        "blue wall": -1.5, "code of silence": -1.6, "stole": -1.2, "stealing": -1.2, "spying": -1.2,
        "surveillance": -0.6, "lawless": -1.5, "above the law": -1.6,
    },
    "brutality": {
        "brutal*": -2.0, "excessive force": -2.0, "beat*": -1.4, "beating": -1.6, "roughed up": -1.6,
        "choke*": -1.5, "tackled": -1.0, "tased": -1.2, "tasered": -1.2, "pepper spray*": -1.2,
        "tear gas*": -1.3, "rubber bullets": -1.3, "killed": -1.6, "kill*": -1.2, "shot": -0.8,
        "unarmed": -1.5, "innocent": -0.8, "to death": -1.5, "died": -0.8, "death": -0.6, "cruelty": -1.8,
        "cruel": -1.5, "violent*": -1.3, "violence": -1.0, "assault*": -1.2, "raid": -0.8, "no knock": -1.2,
        "militariz*": -1.2, "police state": -1.6, "thug*": -1.6,
    },
    "misconduct": {
        "misconduct": -2.0, "abuse*": -1.6, "abuse of power": -2.0, "harass*": -1.6, "profiling": -1.6,
        "profiled": -1.6, "racially profiled": -2.0, "racist*": -1.8, "racism": -1.6,
        "planted evidence": -2.0, "planted": -1.2, "faked": -1.4, "fabricat*": -1.6, "false arrest": -1.6,
        "wrongful*": -1.4, "illegal*": -1.2, "unlawful*": -1.2, "violated": -1.3, "civil rights": -0.8,
        "oversight": -0.6, "consent decree": -0.8, "intimidat*": -1.4, "unacceptable": -1.4,
        "shameful": -1.6, "disgusting": -1.6, "disgrace*": -1.6, "lied": -1.8, "lie": -1.2, "lies": -1.5,
        "lying": -1.6, "liars": -1.8, "should be fired": -1.6, "no explanation": -1.0,
    },
    "cover-up": {
        "cover up": -2.0, "covered up": -2.0, "coverup": -2.0, "covering up": -2.0, "whitewash*": -1.8,
    },
    "accountability demands": {
        "no accountability": -1.8, "zero accountability": -1.8, "accountability": -0.5,
        "held accountable": -0.6, "settlement*": -1.0, "paid out": -0.8, "lawsuit*": -0.8, "sued": -0.8,
        "complaint*": -0.8, "internal affairs": -0.6, "indicted": -1.2, "never forget": -1.0,
        "qualified immunity": -1.2, "defund*": -1.4, "#defundthepolice": -1.6, "acab": -2.0, "pigs": -1.6,
        "🐷": -1.2, "🐖": -1.2, "fuck the police": -2.0, "f the police": -2.0,
    },
    "neglect": {
        "useless": -1.6, "incompeten*": -1.6, "negligen*": -1.5, "ignored": -1.2, "ignoring": -1.2,
        "nobody came": -1.6, "never came": -1.5, "never showed": -1.5, "no callback": -1.2,
        "never returned": -1.0, "didn't even": -0.8, "did nothing": -1.5, "do nothing": -1.3,
        "no help": -1.2, "don't care": -1.2, "failed": -1.2, "failure": -1.2,
    },
    "distrust": {
        "distrust": -1.6, "mistrust": -1.6, "untrustworthy": -1.8, "afraid of": -1.2, "scared of": -1.2,
        "terrified": -1.2, "fear": -0.8, "never trust": -2.0, "can't trust": -1.8,
    },
}

#: Words that flip (and damp) the weight of an entry when they stand up to three words before it.
NEGATIONS: frozenset[str] = frozenset({
    "not", "no", "never", "nobody", "nothing", "none", "neither", "nor", "without", "hardly", "barely",
    "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt", "wasn't", "wasnt",
    "aren't", "arent", "weren't", "werent", "won't", "wont", "can't", "cant", "cannot", "couldn't",
    "couldnt", "shouldn't", "shouldnt", "wouldn't", "wouldnt", "ain't", "aint", "lack", "zero",
})

#: A negated entry counts this fraction of its weight, sign flipped (VADER uses 0.74 for the same idea).
NEGATION_FACTOR = 0.74
#: Entries inside a question ("Do you trust X?") count this fraction of their weight.
QUESTION_FACTOR = 0.3


def flat_lexicon() -> dict[str, float]:
    """All entries with their weights; an entry listed twice keeps its last weight."""
    out: dict[str, float] = {}
    for entries in TRUST_LEXICON.values():
        out.update(entries)
    return out
