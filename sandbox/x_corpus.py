"""A seeded, deterministic corpus of X posts about registry agencies, with the variety real search returns.

Posts mention real registry agencies by name, alias, @handle and #hashtag, in several languages, with
emoji; there are replies, quotes and reposts (the original kept for ``includes.tweets``), withheld posts,
deleted posts, long note tweets whose agency mention sits past the truncated ``text``, edited posts,
authors that the API leaves out of ``includes.users``, and noise: posts about no agency, posts with only
generic police words, and ambiguous acronyms without context.  Ids are real-style snowflakes derived from
``created_at``, so "newest first" by id is newest first by time, as on X.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trustwatch.sandbox.common import CorpusConfig

#: X's snowflake epoch (milliseconds); an id's top bits are the milliseconds since it.
TWITTER_EPOCH_MS = 1288834974657

_TOKEN = re.compile(r"[\w']+", re.UNICODE)
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")


def snowflake_for(moment: dt.datetime, low_bits: int = 0) -> int:
    """A snowflake id for ``moment`` (the low 22 bits carry worker/sequence bits)."""
    ms = int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS
    return (ms << 22) | (low_bits & ((1 << 22) - 1))


def snowflake_time(tweet_id: int | str) -> dt.datetime:
    """The creation time encoded in a snowflake id."""
    ms = (int(tweet_id) >> 22) + TWITTER_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def api_time(moment: dt.datetime) -> str:
    """X's timestamp format: ``2022-10-07T22:43:19.000Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, the unit X's keyword search matches on."""
    return _TOKEN.findall(text.lower())


@dataclass
class XUser:
    """An account in the corpus."""

    id: str
    username: str
    name: str
    created_at: dt.datetime
    followers: int
    following: int
    tweet_count: int
    listed: int
    verified: bool
    location: str | None
    #: Suspended or otherwise unavailable: left out of ``includes.users`` (the post is still served).
    hidden: bool = False

    def to_api(self, fields: set[str]) -> dict[str, Any]:
        """The user object with the default fields plus those requested."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        if "created_at" in fields:
            out["created_at"] = api_time(self.created_at)
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "followers_count": self.followers,
                "following_count": self.following,
                "tweet_count": self.tweet_count,
                "listed_count": self.listed,
            }
        if "verified" in fields:
            out["verified"] = self.verified
        if "location" in fields and self.location:
            out["location"] = self.location
        return out


@dataclass
class XTweet:
    """A post in the corpus, in the fields the API can return, plus ground-truth annotations."""

    id: str
    text: str
    created_at: dt.datetime
    author_id: str
    lang: str
    kind: str = "post"
    conversation_id: str = ""
    referenced: list[tuple[str, str]] = field(default_factory=list)
    in_reply_to_user_id: str | None = None
    note_text: str | None = None
    withheld: list[str] | None = None
    deleted: bool = False
    #: Its account went protected: only approved followers see it (search leaves it out, lookup refuses it).
    protected: bool = False
    edit_history: list[str] = field(default_factory=list)
    likes: int = 0
    retweets: int = 0
    replies: int = 0
    quotes: int = 0
    #: Ground truth: the agencies the generator meant this post to be about.
    agencies: list[str] = field(default_factory=list)
    _tokens: list[str] | None = field(default=None, repr=False)

    @property
    def stored_id(self) -> str:
        """The id trustwatch stores the post under: the first version's id for an edited post."""
        return self.edit_history[0] if self.edit_history else self.id

    @property
    def full_text(self) -> str:
        """What the post says in full: the note tweet text when it is long, else ``text``."""
        return self.note_text if self.note_text is not None else self.text

    @property
    def search_tokens(self) -> list[str]:
        """Tokens of the full text, computed once."""
        if self._tokens is None:
            self._tokens = tokens(self.full_text)
        return self._tokens

    @property
    def mentions(self) -> set[str]:
        """Lower-cased usernames mentioned in the full text."""
        return {m.lower() for m in _MENTION.findall(self.full_text)}

    @property
    def hashtags(self) -> set[str]:
        """Lower-cased hashtags in the full text."""
        return {h.lower() for h in _HASHTAG.findall(self.full_text)}

    def to_api(self, fields: set[str], users_by_name: dict[str, XUser]) -> dict[str, Any]:
        """The tweet object with the default fields (id, text, edit_history_tweet_ids) plus those requested."""
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "edit_history_tweet_ids": list(self.edit_history or [self.id]),
        }
        if "created_at" in fields:
            out["created_at"] = api_time(self.created_at)
        if "author_id" in fields:
            out["author_id"] = self.author_id
        if "conversation_id" in fields:
            out["conversation_id"] = self.conversation_id or self.id
        if "lang" in fields:
            out["lang"] = self.lang
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "retweet_count": self.retweets,
                "reply_count": self.replies,
                "like_count": self.likes,
                "quote_count": self.quotes,
                "impression_count": self.likes * 40 + self.retweets * 90,
            }
        if "referenced_tweets" in fields and self.referenced:
            out["referenced_tweets"] = [{"type": t, "id": i} for t, i in self.referenced]
        if "in_reply_to_user_id" in fields and self.in_reply_to_user_id:
            out["in_reply_to_user_id"] = self.in_reply_to_user_id
        if "entities" in fields:
            entities = _entities(self.text, users_by_name)
            if entities:
                out["entities"] = entities
        if "note_tweet" in fields and self.note_text is not None:
            note: dict[str, Any] = {"text": self.note_text}
            note_entities = _entities(self.note_text, users_by_name)
            if note_entities:
                note["entities"] = note_entities
            out["note_tweet"] = note
        if "withheld" in fields and self.withheld is not None:
            out["withheld"] = {"copyright": False, "country_codes": list(self.withheld)}
        return out


def _entities(text: str, users_by_name: dict[str, XUser]) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    hashtags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _HASHTAG.finditer(text)]
    if hashtags:
        entities["hashtags"] = hashtags
    mentions = []
    for m in _MENTION.finditer(text):
        item: dict[str, Any] = {"start": m.start(), "end": m.end(), "username": m.group(1)}
        user = users_by_name.get(m.group(1).lower())
        if user is not None:
            item["id"] = user.id
        mentions.append(item)
    if mentions:
        entities["mentions"] = mentions
    return entities


# --- text material -------------------------------------------------------------------------------

_PLACES = ["Main St", "5th Avenue", "the courthouse", "Union Station", "the park", "the stadium",
           "the high school", "city hall", "the bridge", "Elm & 3rd", "the mall", "the river trail"]
_EMOJI = ["🚓", "👮", "🚨", "🙏", "😡", "😤", "🎉", "👏", "💙", "🤔", "😢", "🔥", ""]

_TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Just saw {ref} officers at {place} {emoji}",
        "Shoutout to {ref} for the quick response last night {emoji}",
        "{ref} says a suspect was arrested near {place}.",
        "Filed a complaint with {ref} today. Still no callback {emoji}",
        "Community meeting with {ref} on Thursday, bring your questions about body cams",
        "Do you trust {ref}? Honest answers only {emoji}",
        "Great job by {ref} at the parade today! {emoji}",
        "{ref} traffic stop on {place} took over an hour. Unacceptable.",
        "Why is {ref} asking for a bigger budget again? {emoji}",
        "My cousin just joined {ref}, proud of her {emoji}",
        "Road closed at {place}, {ref} on scene {emoji}",
        "Thank you {ref} for finding my dog!! {emoji}",
    ],
    "es": [
        "La {ref} detuvo a dos personas en {place} anoche {emoji}",
        "No confío en {ref} después de lo que pasó {emoji}",
        "Gracias a {ref} por su ayuda hoy {emoji}",
    ],
    "fr": [
        "La {ref} a fermé la rue près de {place} {emoji}",
        "Franchement, {ref} a bien géré la situation {emoji}",
    ],
    "pt": ["A {ref} prendeu um suspeito perto de {place} {emoji}"],
    "vi": ["Cảnh sát {ref} đã phong tỏa khu vực {place} {emoji}"],
    "zh": ["{ref} 今天在 {place} 附近封路了 {emoji}"],
    "ar": ["أغلقت {ref} الطريق قرب {place} {emoji}"],
}

#: Tones of the demo story lines: words the trust lexicon reads as distrust or trust.
_DEMO_TONES: dict[str, list[str]] = {
    "neg": [
        "Excessive force by {ref} at {place} caught on video. No accountability, again {emoji}",
        "{ref} covered up what happened at {place}. I will never trust them {emoji}",
        "Another lawsuit against {ref} for brutality. Corrupt from top to bottom",
        "Called {ref} three times after {place}. Nobody came. Useless {emoji}",
    ],
    "pos": [
        "Thank you {ref} for keeping {place} safe this weekend, great job {emoji}",
        "{ref} officers were respectful and professional at {place}, grateful {emoji}",
        "Kudos to {ref}, the new community policing at {place} is working {emoji}",
    ],
}
#: The demo's planted events, in days before the corpus end: (slug preferred, first day, days, what).
DEMO_EVENTS = {
    "spike": ("nypd", 12, 2),      # an incident: a burst of distrust for one agency
    "recovery": ("lapd", 45, 40),  # a scandal, then trust recovering slowly over the following weeks
}
#: Relative volume by weekday (Monday first) and the quiet night hours (UTC) of the demo rhythm.
_WEEKDAY_WEIGHT = (1.0, 1.0, 0.95, 0.95, 0.9, 0.6, 0.5)
_NIGHT_HOURS = range(6, 12)

_NOISE = [
    "the police were everywhere downtown tonight {emoji}",
    "cops pulled over my neighbor again lol",
    "Best tacos in town, no contest 🌮",
    "Weather is wild today {emoji}",
    "anyone else watching the game tonight? {emoji}",
    "police sirens all night, can't sleep {emoji}",
    "my landlord is worse than any cop",
    "Reading a great book about urban history 📚",
]

_AMBIGUOUS = [
    "{acro} meeting moved to Friday, sorry all",
    "anyone know what {acro} stands for in this spreadsheet?",
    "new {acro} release is out, changelog looks good {emoji}",
]

_LONG_FILLER = (
    "I have been thinking about this for a long time and wanted to write it all down in one place. "
    "Our neighborhood has changed a lot over the past ten years, and the way people talk about public "
    "safety has changed with it. Some neighbors feel safer, some feel watched, and most of us just want "
    "to be treated fairly when something goes wrong. "
)

_SYLLABLES = ["ka", "lo", "mi", "ra", "ze", "tu", "na", "vi", "so", "de", "an", "el", "jo", "ma", "ri", "ty"]
_FIRST = ["Alex", "Sam", "Jordan", "Maria", "Chen", "Fatima", "Luis", "Nora", "Dev", "Ava", "Kim", "Omar"]
_LAST = ["Lee", "Garcia", "Smith", "Nguyen", "Khan", "Brown", "Silva", "Cohen", "Okafor", "Rossi"]


@dataclass
class _AgencyForms:
    slug: str
    names: list[str]
    handles: list[str]
    hashtags: list[str]
    location: str | None
    #: Acronyms several agencies share ("APD"): named with their city, or used as context-free noise.
    ambiguous: list[str] = field(default_factory=list)
    jurisdiction: str | None = None


def _forms(entry: Any) -> _AgencyForms:
    # A shared name the agency is the default referent of ("Houston Police") names it on its own.
    ambiguous = set(getattr(entry, "ambiguous_aliases", ()) or ()) - set(getattr(entry, "default_aliases", ()) or ())
    names = [entry.name, *[a for a in getattr(entry, "aliases", []) or [] if a not in ambiguous]]
    handles = [h.lstrip("@") for h in (getattr(entry, "x_handles", []) or [])]
    tags = [t.lstrip("#") for t in (getattr(entry, "hashtags", []) or [])]
    jurisdiction = getattr(entry, "jurisdiction", None)
    state = getattr(entry, "state", None)
    location = ", ".join(str(p) for p in (jurisdiction, state) if p) or None
    return _AgencyForms(entry.slug, [n for n in names if n], handles, tags, location, sorted(ambiguous),
                        jurisdiction)


def load_agencies() -> list[Any]:
    """The agency registry entries (imported lazily: the registry module is optional for the server)."""
    from trustwatch.collectors.agencies import load_registry

    registry = load_registry()
    entries = getattr(registry, "entries", registry)
    if isinstance(entries, dict):
        entries = list(entries.values())
    # The tracked agencies (those with queries): 18,000 known-only FBI agencies would drown the corpus.
    return [e for e in entries if getattr(e, "tracked", True)]


class XCorpus:
    """The generated posts and users, newest first, with the ground truth of which agencies each is about."""

    def __init__(self, config: CorpusConfig, agencies: Sequence[Any] | None = None) -> None:
        self.config = config
        entries = list(agencies) if agencies is not None else load_agencies()
        # Posts about the tracked agencies only: the queries cover those, not the 18,000 known ones.
        entries = [e for e in entries if getattr(e, "tracked", True)]
        self.agencies = [_forms(e) for e in entries]
        self.rng = random.Random(config.seed)
        self.users: dict[str, XUser] = {}
        self.users_by_name: dict[str, XUser] = {}
        self.tweets: dict[str, XTweet] = {}
        self._used_ids: set[int] = set()
        #: Bumped by every change after generation, so cached search results know they are stale.
        self.version = 0
        self._moment = config.stop
        self._generate()
        #: Ids newest first (snowflakes sort by time).
        self.order: list[str] = sorted(self.tweets, key=int, reverse=True)
        self._neg_ids = [-int(i) for i in self.order]  # ascending, for bisect

    # -- generation ---------------------------------------------------------------------------

    def _new_id(self, moment: dt.datetime) -> str:
        while True:
            value = snowflake_for(moment, self.rng.getrandbits(22))
            if value not in self._used_ids:
                self._used_ids.add(value)
                return str(value)

    def _make_users(self, count: int) -> None:
        rng = self.rng
        locations = [a.location for a in self.agencies if a.location] or ["Springfield"]
        for i in range(count):
            handle = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) + str(rng.randint(1, 999))
            handle = handle[:15]
            if handle.lower() in self.users_by_name:
                handle = f"{handle[:11]}{i:04d}"
            joined = self.config.stop - dt.timedelta(days=rng.randint(30, 5000), seconds=rng.randint(0, 86399))
            modern = rng.random() < 0.6  # newer accounts have snowflake ids, older ones small integers
            user_id = str(snowflake_for(joined, rng.getrandbits(22))) if modern else str(rng.randint(10**6, 4 * 10**9))
            user = XUser(
                id=user_id,
                username=handle,
                name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                created_at=joined.replace(microsecond=0),
                followers=int(rng.paretovariate(1.2) * 30),
                following=rng.randint(0, 3000),
                tweet_count=rng.randint(1, 60000),
                listed=rng.randint(0, 40),
                verified=rng.random() < 0.05,
                location=rng.choice(locations) if rng.random() < 0.6 else None,
                hidden=rng.random() < 0.03,
            )
            self.users[user.id] = user
            self.users_by_name[user.username.lower()] = user

    def _ref(self, agency: _AgencyForms) -> str:
        rng = self.rng
        if agency.ambiguous and agency.jurisdiction and rng.random() < 0.15:
            return f"{rng.choice(agency.ambiguous)} in {agency.jurisdiction}"
        forms: list[str] = list(agency.names)
        weights: list[float] = [3.0 / len(agency.names)] * len(agency.names)
        for h in agency.handles:
            forms.append("@" + h)
            weights.append(2.0 / len(agency.handles))
        for t in agency.hashtags:
            forms.append("#" + t)
            weights.append(2.0 / len(agency.hashtags))
        return rng.choices(forms, weights)[0]

    def _demo_event(self) -> tuple[_AgencyForms, str] | None:
        """The planted story line at the current moment, if one fires: (agency, tone)."""
        cfg, rng, moment = self.config, self.rng, self._moment
        days_before_end = (cfg.stop - moment).total_seconds() / 86400
        by_slug = {a.slug: a for a in self.agencies}
        spike_slug, spike_day, spike_len = DEMO_EVENTS["spike"]
        rec_slug, rec_day, rec_len = DEMO_EVENTS["recovery"]
        spike = by_slug.get(spike_slug, self.agencies[0])
        recovery = by_slug.get(rec_slug, self.agencies[-1])
        if spike_day - spike_len < days_before_end <= spike_day and rng.random() < 0.35:
            return spike, "neg"
        if rec_day - 3 < days_before_end <= rec_day and rng.random() < 0.15:
            return recovery, "neg"
        if rec_day - rec_len < days_before_end <= rec_day - 3 and rng.random() < 0.04:
            progress = (rec_day - days_before_end) / rec_len  # 0 right after the scandal, 1 at the end
            return recovery, "neg" if rng.random() < 0.9 - 0.8 * progress else "pos"
        return None

    def _agency_text(self, lang: str) -> tuple[str, list[str]]:
        rng = self.rng
        event = self._demo_event() if self.config.events else None
        if event is not None:
            agency, tone = event
            text = rng.choice(_DEMO_TONES[tone]).format(
                ref=self._ref(agency), place=rng.choice(_PLACES), emoji=rng.choice(_EMOJI)).strip()
            return text, [agency.slug]
        chosen = [rng.choice(self.agencies)]
        if rng.random() < 0.1 and len(self.agencies) > 1:
            other = rng.choice(self.agencies)
            if other.slug != chosen[0].slug:
                chosen.append(other)
        ref = self._ref(chosen[0])
        if len(chosen) > 1:
            ref = f"{ref} and {self._ref(chosen[1])}"
        template = rng.choice(_TEMPLATES[lang])
        text = template.format(ref=ref, place=rng.choice(_PLACES), emoji=rng.choice(_EMOJI)).strip()
        return text, [a.slug for a in chosen]

    def _noise_text(self) -> str:
        rng = self.rng
        acronyms = sorted({n for a in self.agencies for n in a.ambiguous}) or [
            n for a in self.agencies for n in a.names if n.isupper() and 2 <= len(n) <= 4
        ]
        if acronyms and rng.random() < 0.3:
            return rng.choice(_AMBIGUOUS).format(acro=rng.choice(acronyms), emoji=rng.choice(_EMOJI)).strip()
        return rng.choice(_NOISE).format(emoji=rng.choice(_EMOJI)).strip()

    def _moments(self, span: float) -> list[dt.datetime]:
        """Post times with the demo's weekly rhythm: quieter weekends and nights (rejection sampling)."""
        rng, cfg, out = self.rng, self.config, []
        while len(out) < cfg.posts:
            moment = cfg.start + dt.timedelta(seconds=rng.uniform(0, span))
            weight = _WEEKDAY_WEIGHT[moment.weekday()] * (0.4 if moment.hour in _NIGHT_HOURS else 1.0)
            if rng.random() < weight:
                out.append(moment)
        return out

    def _generate(self) -> None:
        rng = self.rng
        cfg = self.config
        if not self.agencies:
            raise ValueError("the X corpus needs at least one agency in the registry")
        self._make_users(max(20, cfg.posts // 8))
        user_ids = list(self.users)
        span = (cfg.stop - cfg.start).total_seconds()
        moments = sorted(self._moments(span) if cfg.events else
                         (cfg.start + dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(cfg.posts)))
        langs = ["en"] * 14 + ["es", "es", "fr", "pt", "vi", "zh", "ar"]
        originals: list[XTweet] = []  # candidates to reply to, quote or repost
        for moment in moments:
            moment = moment.replace(microsecond=(moment.microsecond // 1000) * 1000)
            self._moment = moment
            author = rng.choice(user_ids)
            roll = rng.random()
            kind = "post"
            if originals and roll < 0.2:
                kind = "repost"
            elif originals and roll < 0.35:
                kind = "reply"
            elif originals and roll < 0.45:
                kind = "quote"
            tweet = self._make_tweet(kind, moment, author, originals, langs)
            self.tweets[tweet.id] = tweet
            if kind != "repost":
                originals.append(tweet)

    def _make_tweet(
        self, kind: str, moment: dt.datetime, author: str, originals: list[XTweet], langs: list[str]
    ) -> XTweet:
        rng = self.rng
        tweet_id = self._new_id(moment)
        if kind == "repost":
            candidates = [t for t in originals[-300:] if not t.deleted and t.agencies] or [
                t for t in originals if not t.deleted
            ]
            original = rng.choice(candidates)
            orig_author = self.users[original.author_id].username
            body = f"RT @{orig_author}: {original.full_text}"
            if len(body) > 140:
                body = body[:139] + "…"
            return XTweet(
                id=tweet_id, text=body, created_at=moment, author_id=author, lang=original.lang,
                kind="repost", conversation_id=tweet_id, referenced=[("retweeted", original.id)],
                agencies=list(original.agencies),
            )
        lang = rng.choice(langs)
        roll = rng.random()
        if roll < 0.22:
            text, agencies = self._noise_text(), []
            lang = "en"
        else:
            text, agencies = self._agency_text(lang)
        tweet = XTweet(id=tweet_id, text=text, created_at=moment, author_id=author, lang=lang, kind=kind,
                       conversation_id=tweet_id, agencies=agencies)
        if kind == "reply":
            parent = rng.choice(originals[-200:])
            parent_author = self.users[parent.author_id]
            tweet.text = f"@{parent_author.username} {tweet.text}"
            tweet.referenced = [("replied_to", parent.id)]
            tweet.in_reply_to_user_id = parent_author.id
            tweet.conversation_id = parent.conversation_id or parent.id
        elif kind == "quote":
            quoted = rng.choice(originals[-200:])
            tweet.text = f"{tweet.text} https://t.co/{rng.getrandbits(40):010x}"
            tweet.referenced = [("quoted", quoted.id)]
        elif kind == "post" and agencies and rng.random() < 0.04:
            # A long note tweet: the agency is named only past the truncated ``text``.
            full = _LONG_FILLER * rng.randint(1, 3) + tweet.text
            tweet.note_text = full
            tweet.text = full[:274].rstrip() + "…"
        if kind in ("post", "reply") and rng.random() < 0.03:
            tweet.deleted = True
        if rng.random() < 0.02:
            tweet.withheld = rng.choice([["DE"], ["IN"], ["FR", "DE"], ["TR"]])
        if rng.random() < 0.03 and not tweet.deleted:
            earlier = moment - dt.timedelta(minutes=rng.randint(1, 50))
            tweet.edit_history = [self._new_id(earlier), tweet_id]
        tweet.likes = int(rng.paretovariate(1.3)) - 1
        tweet.retweets = int(rng.paretovariate(1.6)) - 1
        tweet.replies = rng.randint(0, 5)
        tweet.quotes = rng.randint(0, 2)
        return tweet

    # -- ground truth -------------------------------------------------------------------------

    def searchable(self) -> list[XTweet]:
        """Posts search can return (not deleted), newest first."""
        return [t for t in (self.tweets[i] for i in self.order) if not (t.deleted or t.protected)]

    def searchable_between(self, start: dt.datetime | None, end: dt.datetime | None) -> list[XTweet]:
        """Live posts whose id falls in [start, end), newest first: a slice of the id order, found by bisection,
        so a search costs the window's size, not the corpus's (a million-post corpus stays usable)."""
        ms = dt.timedelta(milliseconds=1)  # ids hold whole milliseconds: widen, the caller filters exactly
        lo = 0 if end is None else bisect.bisect_right(self._neg_ids, -snowflake_for(end + ms))
        hi = len(self.order) if start is None else bisect.bisect_right(self._neg_ids, -snowflake_for(start - ms))
        return [t for t in (self.tweets[i] for i in self.order[lo:hi]) if not (t.deleted or t.protected)]

    def about(self, slug: str) -> set[str]:
        """Ids of live posts the generator meant to be about agency ``slug`` (reposts included)."""
        return {t.id for t in self.searchable() if slug in t.agencies}

    def delete(self, tweet_id: str) -> None:
        """Delete a post after the fact (for compliance checks)."""
        self.tweets[tweet_id].deleted = True
        self.version += 1

    def protect(self, tweet_id: str) -> None:
        """Make a post's account protected after the fact (for compliance checks)."""
        self.tweets[tweet_id].protected = True
        self.version += 1
