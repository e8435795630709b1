"""A seeded, deterministic Reddit corpus about registry agencies, with the ground truth of each post.

Same agencies and time span as the X corpus (``CorpusConfig``).  Submissions live in the global
subreddits (where they name agencies, as Reddit search finds them) and in the agencies' own
subreddits (where generic police words count, by the community rule).  Every submission has a comment
tree (nested replies, some deleted or removed).  Noise: posts about no agency, posts with only generic
police words outside an agency subreddit, off-topic chatter in agency subreddits.  Shared acronyms
without context ("APD meeting moved to Friday") name no agency but are not noise: a listing keeps them as
ambiguities (``unsettled``: their candidates), without reading their comment trees.  Ids are base36
counters that grow with time, as on Reddit, submissions and comments each with their own counter.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustwatch.collectors.agencies import DEFAULT_GLOBAL_SUBREDDITS
from trustwatch.sandbox.common import CorpusConfig

#: The global subreddits the compiled searches run in (the query compiler's default).
GLOBAL_SUBREDDITS: tuple[str, ...] = DEFAULT_GLOBAL_SUBREDDITS

#: A subreddit nobody searches: posts there must never be collected.
OFFTOPIC_SUBREDDIT = "AskReddit"

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(value: int) -> str:
    """Reddit's id spelling of a counter."""
    if value <= 0:
        return "0"
    digits = []
    while value:
        value, rest = divmod(value, 36)
        digits.append(_B36[rest])
    return "".join(reversed(digits))


#: Scores grow with votes over the first three days, then stay (what a revisit's snapshots show).
SCORE_SETTLES = dt.timedelta(hours=72)


def score_at(final: int, created: dt.datetime, now: dt.datetime | None) -> int:
    """The score a thing shows at ``now``: a share of its final score growing with its age."""
    if now is None or now - created >= SCORE_SETTLES:
        return final
    share = max(0.0, (now - created) / SCORE_SETTLES)
    return int(final * share)


@dataclass
class RedditComment:
    """A comment; ``parent`` is a fullname (``t3_`` for top level, ``t1_`` for a reply)."""

    id: str
    link_id: str
    parent: str
    subreddit: str
    author: str
    body: str
    created: dt.datetime
    score: int
    replies: list[str] = field(default_factory=list)
    #: Agencies the comment names itself (ground truth of the ``r/SUB/comments`` listings).
    agencies: list[str] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        """``t1_<id>``."""
        return f"t1_{self.id}"

    def to_data(self, permalink_title: str = "_", now: dt.datetime | None = None) -> dict[str, Any]:
        """The ``data`` of a ``t1`` thing as Reddit sends it (``replies`` set by the caller); the
        score as it stands at ``now`` (the final one when None)."""
        score = score_at(self.score, self.created, now)
        return {
            "id": self.id,
            "name": self.fullname,
            "link_id": f"t3_{self.link_id}",
            "parent_id": self.parent,
            "subreddit": self.subreddit,
            "subreddit_name_prefixed": f"r/{self.subreddit}",
            "author": self.author,
            "author_fullname": None if self.author == "[deleted]" else f"t2_{self.author.lower()}",
            "body": self.body,
            "score": score,
            "ups": score,
            "downs": 0,
            "created_utc": float(int(self.created.timestamp())),
            "created": float(int(self.created.timestamp())),
            "edited": False,
            "stickied": False,
            "distinguished": None,
            "is_submitter": False,
            "collapsed": self.body in ("[deleted]", "[removed]"),
            "permalink": f"/r/{self.subreddit}/comments/{self.link_id}/{permalink_title}/{self.id}/",
            "replies": "",
        }


@dataclass
class RedditSubmission:
    """A submission with the agencies it is about (the ground truth) and its comment ids."""

    id: str
    subreddit: str
    author: str
    title: str
    selftext: str
    created: dt.datetime
    score: int
    agencies: list[str]
    removed_by_category: str | None = None
    #: The candidates (corpus agencies) of the shared name the submission leaves unsettled when it names no
    #: agency for certain ("APD ..." without a city): stored as an ambiguity, attributed to none.
    unsettled: list[str] = field(default_factory=list)
    #: Locked by the moderators: no new comments (tests lock a thread between two reads).
    locked: bool = False
    comments: list[str] = field(default_factory=list)  # top-level comment ids, oldest first
    all_comments: list[str] = field(default_factory=list)  # every comment id of the thread

    @property
    def fullname(self) -> str:
        """``t3_<id>``."""
        return f"t3_{self.id}"

    @property
    def slug_title(self) -> str:
        """The title part of the permalink."""
        return re.sub(r"[^a-z0-9]+", "_", self.title.lower()).strip("_")[:50] or "_"

    def to_data(self, now: dt.datetime | None = None, num_comments: int | None = None) -> dict[str, Any]:
        """The ``data`` of a ``t3`` thing as Reddit sends it, as it stands at ``now`` (score and
        comment count; the final ones when None)."""
        stamp = float(int(self.created.timestamp()))
        score = score_at(self.score, self.created, now)
        permalink = f"/r/{self.subreddit}/comments/{self.id}/{self.slug_title}/"
        return {
            "id": self.id,
            "name": self.fullname,
            "subreddit": self.subreddit,
            "subreddit_name_prefixed": f"r/{self.subreddit}",
            "subreddit_type": "public",
            "author": self.author,
            "author_fullname": None if self.author == "[deleted]" else f"t2_{self.author.lower()}",
            "title": self.title,
            "selftext": self.selftext,
            "is_self": True,
            "domain": f"self.{self.subreddit}",
            "url": "https://www.reddit.com" + permalink,
            "permalink": permalink,
            "score": score,
            "ups": score,
            "upvote_ratio": 0.9,
            "num_comments": len(self.all_comments) if num_comments is None else num_comments,
            "created_utc": stamp,
            "created": stamp,
            "over_18": False,
            "stickied": False,
            "locked": self.locked,
            "removed_by_category": self.removed_by_category,
            "edited": False,
        }


# --- text material ---------------------------------------------------------------------------

_PLACES = [
    "Main St",
    "the courthouse",
    "Union Station",
    "the park",
    "city hall",
    "the bridge",
    "the stadium",
    "the high school",
    "the river trail",
    "the mall",
]

_AGENCY_TITLES = [
    "{ref} arrests suspect near {place}",
    "What is your experience filing a complaint with {ref}?",
    "{ref} releases body camera footage from {place} incident",
    "Does anyone actually trust {ref} anymore?",
    "{ref} budget hearing tonight at city hall",
    "Kudos to {ref} for the quick response at {place}",
    "{ref} traffic stop lasted over an hour",
    "{ref} announces new community liaison program",
]

_LOCAL_TITLES = [
    "The {word} were at {place} all night, anyone know why?",
    "Had a surprisingly good interaction with the {word} today",
    "Why do the {word} never answer non-emergency calls?",
    "Big {word} presence near {place} this morning",
    "Are the {word} hiring? Thinking about applying",
]

_BODIES = [
    "Curious what everyone here thinks.",
    "Posting this so people know what happened.",
    "Not sure how I feel about it, honestly.",
    "Long time lurker, first post. Be kind.",
    "",
]

_NOISE_TITLES = [
    "the police were everywhere downtown tonight",
    "cops pulled over my neighbor again",
    "police sirens all night, can't sleep",
]

_AMBIGUOUS_TITLES = [
    "{acro} meeting moved to Friday, sorry all",
    "anyone know what {acro} stands for in this spreadsheet?",
]

_OFFTOPIC_TITLES = [
    "Best tacos in town?",
    "Farmers market is back this weekend",
    "Looking for a good dentist",
    "Road construction on {place} again",
    "Lost cat near {place}, orange tabby",
    "Anyone going to the concert Saturday?",
]

_COMMENTS = [
    "This is wild.",
    "Same thing happened to my brother last year.",
    "Source?",
    "I have mixed feelings about this.",
    "Thanks for posting.",
    "They did a good job here, honestly.",
    "Completely unacceptable.",
    "Following for updates.",
]

_SYLLABLES = ["ka", "lo", "mi", "ra", "ze", "tu", "na", "vi", "so", "de", "an", "el", "jo", "ma", "ri", "ty"]


@dataclass
class _Agency:
    slug: str
    refs: list[str]  # names/aliases that identify it on their own
    subreddits: list[str]
    community_words: list[str]
    ambiguous: list[str]


def _agency_forms(entry: Any) -> _Agency:
    # A shared name the agency is the default referent of ("Houston Police") names it on its own.
    defaults = set(getattr(entry, "default_aliases", ()) or ())
    skip = {a.lower() for a in (getattr(entry, "ambiguous_aliases", ()) or ()) if a not in defaults}
    skip |= {a.lower() for a in (getattr(entry, "exact_case_aliases", ()) or ())}
    refs = [entry.name] + [a for a in (entry.aliases or ()) if a.lower() not in skip]
    words = [w for w in (getattr(entry, "community_words", ()) or ()) if " " not in w and "'" not in w]
    return _Agency(
        slug=entry.slug,
        refs=list(dict.fromkeys(r for r in refs if r)),
        subreddits=[s.removeprefix("r/") for s in (entry.subreddits or ())],
        community_words=words,
        ambiguous=[a for a in (getattr(entry, "ambiguous_aliases", ()) or ()) if a.isupper() and len(a) <= 5],
    )


def load_agencies() -> list[Any]:
    """The active registry entries (imported lazily: the registry module is optional)."""
    from trustwatch.collectors.agencies import load_registry

    # The tracked agencies (those with queries): 18,000 known-only FBI agencies would drown the corpus.
    return [entry for entry in load_registry().entries
            if getattr(entry, "active", True) and getattr(entry, "tracked", True)]


class RedditCorpus:
    """Submissions and comment trees, with which agencies each submission is about."""

    def __init__(self, config: CorpusConfig, agencies: Sequence[Any] | None = None) -> None:
        self.config = config
        entries = list(agencies) if agencies is not None else load_agencies()
        # Posts about the tracked agencies only: the queries cover those, not the 18,000 known ones.
        entries = [e for e in entries if getattr(e, "tracked", True)]
        self.agencies = [_agency_forms(e) for e in entries]
        if not self.agencies:
            raise ValueError("the Reddit corpus needs at least one agency in the registry")
        self.rng = random.Random(config.seed * 7919 + 36)
        #: Comment arrival times have their own generator (see _add_comments).
        self._arrival_rng = random.Random(config.seed * 7919 + 37)
        self.submissions: dict[str, RedditSubmission] = {}
        self.comments: dict[str, RedditComment] = {}
        #: lower-cased subreddit -> name as written
        self.subreddit_names: dict[str, str] = {}
        self._next_submission = 36**5  # ids of 6 characters, like today's
        self._next_comment = 0  # temporary ids while generating; see _renumber_comments
        self._users = self._make_users(max(30, config.posts // 10))
        self._generate()
        self._index()

    # -- generation -------------------------------------------------------------------------

    def _make_users(self, count: int) -> list[str]:
        rng = self.rng
        names: list[str] = []
        for i in range(count):
            base = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
            names.append(f"{base.capitalize()}_{rng.randint(1, 9999)}_{i}")
        return names

    def _sub_name(self, name: str) -> str:
        return self.subreddit_names.setdefault(name.lower(), name)

    def _generate(self) -> None:
        rng = self.rng
        cfg = self.config
        total = max(0, cfg.posts // 2)
        span = (cfg.stop - cfg.start).total_seconds()
        moments = sorted(cfg.start + dt.timedelta(seconds=int(rng.uniform(0, span))) for _ in range(total))
        owners: dict[str, set[str]] = {}
        for agency in self.agencies:
            for sub in agency.subreddits:
                owners.setdefault(sub.lower(), set()).add(agency.slug)
        for agency in self.agencies:
            for sub in agency.subreddits:
                self._sub_name(sub)
        # Local posts go only where one agency owns the subreddit: the community rule is then unambiguous.
        for agency in self.agencies:
            agency.subreddits = [s for s in agency.subreddits if len(owners[s.lower()]) == 1]
        local = [a for a in self.agencies if a.subreddits and a.community_words]
        for name in GLOBAL_SUBREDDITS:
            self._sub_name(name)
        self._sub_name(OFFTOPIC_SUBREDDIT)

        for moment in moments:
            roll = rng.random()
            unsettled: list[str] = []
            if roll < 0.35 or not local:
                sub, title, labels = self._global_agency_post()
            elif roll < 0.45:
                sub, title, labels, unsettled = self._global_noise_post()
            elif roll < 0.78:
                sub, title, labels = self._local_post(rng.choice(local))
            elif roll < 0.93:
                sub, title, labels = self._local_offtopic_post(rng.choice(local))
            else:
                sub, title, labels = OFFTOPIC_SUBREDDIT, self._offtopic_title(), []
            self._add_submission(moment, sub, title, labels).unsettled = unsettled
        self._renumber_comments()
        self._add_history()

    def _ref(self, agency: _Agency) -> str:
        return self.rng.choice(agency.refs)

    def _global_agency_post(self) -> tuple[str, str, list[str]]:
        rng = self.rng
        chosen = [rng.choice(self.agencies)]
        if rng.random() < 0.1 and len(self.agencies) > 1:
            other = rng.choice(self.agencies)
            if other.slug != chosen[0].slug:
                chosen.append(other)
        ref = " and ".join(self._ref(a) for a in chosen)
        title = rng.choice(_AGENCY_TITLES).format(ref=ref, place=rng.choice(_PLACES))
        return rng.choice(GLOBAL_SUBREDDITS), title, [a.slug for a in chosen]

    def _global_noise_post(self) -> tuple[str, str, list[str], list[str]]:
        """A global post about no agency for certain, and the candidates of the acronym it leaves unsettled."""
        rng = self.rng
        acronyms = [acro for a in self.agencies for acro in a.ambiguous]
        unsettled: list[str] = []
        if acronyms and rng.random() < 0.4:
            template = rng.choice(_AMBIGUOUS_TITLES)  # drawn before the acronym: the seeds' corpora stay
            acro = rng.choice(acronyms)
            title = template.format(acro=acro)
            unsettled = [a.slug for a in self.agencies if acro in a.ambiguous]
        elif rng.random() < 0.6:
            title = rng.choice(_NOISE_TITLES)
        else:
            title = self._offtopic_title()
        return rng.choice(GLOBAL_SUBREDDITS), title, [], unsettled

    def _local_post(self, agency: _Agency) -> tuple[str, str, list[str]]:
        rng = self.rng
        sub = rng.choice(agency.subreddits)
        if rng.random() < 0.3:
            title = rng.choice(_AGENCY_TITLES).format(ref=self._ref(agency), place=rng.choice(_PLACES))
        else:
            title = rng.choice(_LOCAL_TITLES).format(word=rng.choice(agency.community_words), place=rng.choice(_PLACES))
        return sub, title, [agency.slug]

    def _local_offtopic_post(self, agency: _Agency) -> tuple[str, str, list[str]]:
        return self.rng.choice(agency.subreddits), self._offtopic_title(), []

    def _offtopic_title(self) -> str:
        return self.rng.choice(_OFFTOPIC_TITLES).format(place=self.rng.choice(_PLACES))

    def _add_submission(self, moment: dt.datetime, sub: str, title: str, labels: list[str]) -> RedditSubmission:
        rng = self.rng
        self._next_submission += rng.randint(1, 40)
        sid = to_base36(self._next_submission)
        author = rng.choice(self._users)
        selftext = rng.choice(_BODIES)
        removed: str | None = None
        roll = rng.random()
        if roll < 0.03:
            author, selftext, removed = "[deleted]", "[deleted]", "deleted"
        elif roll < 0.06:
            selftext, removed = "[removed]", "moderator"
        submission = RedditSubmission(
            id=sid,
            subreddit=self._sub_name(sub),
            author=author,
            title=title,
            selftext=selftext,
            created=moment,
            score=rng.randint(0, 500),
            agencies=labels,
            removed_by_category=removed,
        )
        self.submissions[sid] = submission
        self._add_comments(submission)
        return submission

    def _add_comments(self, submission: RedditSubmission) -> None:
        """A comment tree whose comments arrive over days, as on Reddit: about 40% within 6 hours of
        the submission, 30% by the end of the first day, 20% by the third and the rest within a week
        (so a thread read once, right after its hour, misses most of them).  Ids are given later, in
        order of arrival, by :meth:`_renumber_comments`."""
        rng = self.rng
        count = rng.choice([0, 0, 1, 2, 3, 4, 6, 9, 14])
        parents: list[str] = [submission.fullname]
        delays = sorted(self._arrival_delay() for _ in range(count))
        for delay in delays:
            moment = submission.created + dt.timedelta(seconds=int(delay))
            # The main generator makes the same draws as before arrival times existed (two are unused
            # now), so the submissions and threads a seed gives stay what other tests were written for.
            rng.random()
            # mostly replies to recent comments, which makes chains deep enough for "continue this thread"
            parent = parents[-1] if rng.random() < 0.45 else rng.choice(parents)
            rng.randint(1, 25)
            self._next_comment += 1
            cid = f"tmp{self._next_comment}"
            author, body = rng.choice(self._users), rng.choice(_COMMENTS)
            labels: list[str] = []
            roll = rng.random()
            if roll < 0.05:
                author, body = "[deleted]", "[deleted]"
            elif roll < 0.08:
                author, body = "[deleted]", "[removed]"
            elif roll < 0.2 and self.agencies:
                named = rng.choice(self.agencies)
                labels = [named.slug]
                body = f"{body} Reminds me of what {self._ref(named)} did last year."
            comment = RedditComment(
                id=cid,
                link_id=submission.id,
                parent=parent,
                subreddit=submission.subreddit,
                author=author,
                body=body,
                created=moment,
                score=rng.randint(-5, 200),
                agencies=labels,
            )
            self.comments[cid] = comment
            submission.all_comments.append(cid)
            if parent == submission.fullname:
                submission.comments.append(cid)
            else:
                self.comments[parent[3:]].replies.append(cid)
            parents.append(comment.fullname)

    def _arrival_delay(self) -> float:
        """Seconds between a submission and one of its comments (see :meth:`_add_comments`)."""
        rng = self._arrival_rng
        roll = rng.random()
        hour = 3600.0
        if roll < 0.4:
            return rng.uniform(60, 6 * hour)
        if roll < 0.7:
            return rng.uniform(6 * hour, 24 * hour)
        if roll < 0.9:
            return rng.uniform(24 * hour, 72 * hour)
        return rng.uniform(72 * hour, 167 * hour)

    def _add_history(self) -> None:
        """Posts from before the span, as every real subreddit has: one off-topic post per subreddit
        and one post naming each agency in a global subreddit, a month back.  So a listing or search
        that reaches back far enough always finds something older than a window inside the span, and
        one that ends before that was cut (the rule the collector flags gaps by).  Ids below the span's,
        no comments; they are in no window's ground truth."""
        rng = random.Random(self.config.seed * 104729 + 1)
        assert self.config.start is not None
        old = self.config.start - dt.timedelta(days=30)
        plan: list[tuple[str, str, list[str]]] = []
        for name in sorted(self.subreddit_names.values(), key=str.lower):
            plan.append((name, rng.choice(_OFFTOPIC_TITLES).format(place=rng.choice(_PLACES)), []))
        for n, agency in enumerate(self.agencies):
            title = _AGENCY_TITLES[0].format(ref=agency.refs[0], place=rng.choice(_PLACES))
            plan.append((GLOBAL_SUBREDDITS[n % len(GLOBAL_SUBREDDITS)], title, [agency.slug]))
        counter = 36**5 - 10 * (len(plan) + 1)
        for n, (sub, title, labels) in enumerate(plan):
            counter += rng.randint(1, 9)
            sid = to_base36(counter)
            self.submissions[sid] = RedditSubmission(
                id=sid, subreddit=self._sub_name(sub), author=rng.choice(self._users), title=title, selftext="",
                created=old + dt.timedelta(minutes=n), score=rng.randint(0, 50), agencies=labels,
            )
        self.history = {sid for sid, sub in self.submissions.items() if sub.created < self.config.start}

    def _renumber_comments(self) -> None:
        """Give comments base36 ids in order of arrival across all threads (Reddit's ids grow with time)."""
        ordered = sorted(self.comments.values(), key=lambda c: (c.created, int(c.id[3:])))
        counter = 36**6
        new_id: dict[str, str] = {}
        for comment in ordered:
            counter += self._arrival_rng.randint(1, 25)
            new_id[comment.id] = to_base36(counter)
        self._next_comment = counter
        renamed: dict[str, RedditComment] = {}
        for comment in ordered:
            comment.id = new_id[comment.id]
            if comment.parent.startswith("t1_"):
                comment.parent = "t1_" + new_id[comment.parent[3:]]
            comment.replies = [new_id[r] for r in comment.replies]
            renamed[comment.id] = comment
        self.comments = renamed
        for submission in self.submissions.values():
            submission.comments = [new_id[c] for c in submission.comments]
            submission.all_comments = [new_id[c] for c in submission.all_comments]

    def _index(self) -> None:
        #: lower-cased subreddit -> submission ids, newest first
        self.by_subreddit: dict[str, list[str]] = {}
        for sid in sorted(self.submissions, key=lambda s: int(s, 36), reverse=True):
            self.by_subreddit.setdefault(self.submissions[sid].subreddit.lower(), []).append(sid)
        #: lower-cased subreddit -> comment ids, newest first (the ``r/SUB/comments`` listing)
        self.comments_by_subreddit: dict[str, list[str]] = {}
        for cid in sorted(self.comments, key=lambda c: int(c, 36), reverse=True):
            self.comments_by_subreddit.setdefault(self.comments[cid].subreddit.lower(), []).append(cid)

    # -- for tests ------------------------------------------------------------------------

    def add_filler(self, subreddit: str, count: int, start: dt.datetime, end: dt.datetime) -> list[str]:
        """Add ``count`` off-topic submissions to a subreddit in [start, end): a busy subreddit whose
        ``new`` listing hits Reddit's 1,000 item cap.  Returns the new ids; ground truth is unchanged."""
        span = (end - start).total_seconds()
        moments = sorted(start + dt.timedelta(seconds=span * (i + 0.5) / count) for i in range(count))
        ids: list[str] = []
        latest = max((int(s, 36) for s in self.submissions), default=self._next_submission)
        self._next_submission = max(self._next_submission, latest)
        for moment in moments:
            self._next_submission += 1
            sid = to_base36(self._next_submission)
            self.submissions[sid] = RedditSubmission(
                id=sid,
                subreddit=self._sub_name(subreddit),
                author=self.rng.choice(self._users),
                title=self._offtopic_title(),
                selftext="",
                created=moment,
                score=1,
                agencies=[],
            )
            ids.append(sid)
        self._index()
        return ids

    def add_submission(
        self, subreddit: str, title: str, created: dt.datetime, agencies: Sequence[str] = (),
        unsettled: Sequence[str] = (),
    ) -> str:
        """Add a submission without comments; ``agencies`` are what it names for certain and ``unsettled`` the
        candidates of a shared name it leaves open ("Clinton PD" alone).  Returns its id."""
        latest = max((int(s, 36) for s in self.submissions), default=self._next_submission)
        self._next_submission = max(self._next_submission, latest) + 1
        sid = to_base36(self._next_submission)
        self.submissions[sid] = RedditSubmission(
            id=sid, subreddit=self._sub_name(subreddit), author=self.rng.choice(self._users), title=title,
            selftext="", created=created, score=1, agencies=list(agencies), unsettled=list(unsettled),
        )
        self._index()
        return sid

    def add_comment(self, link_id: str, body: str, created: dt.datetime, agencies: Sequence[str] = ()) -> str:
        """Add a top-level comment to submission ``link_id``; ``agencies`` are what it names for certain (its
        ground truth: a comment that only uses a shared name without settling it names none).  Returns its id."""
        submission = self.submissions[link_id]
        self._next_comment = max(self._next_comment, max((int(c, 36) for c in self.comments), default=0)) + 1
        cid = to_base36(self._next_comment)
        self.comments[cid] = RedditComment(
            id=cid, link_id=link_id, parent=submission.fullname, subreddit=submission.subreddit,
            author=self.rng.choice(self._users), body=body, created=created, score=1, agencies=list(agencies),
        )
        submission.comments.append(cid)
        submission.all_comments.append(cid)
        self._index()
        return cid

    def delete_account(self, username: str) -> int:
        """The user deletes their account: Reddit shows ``[deleted]`` as the author of everything they
        wrote and keeps the text.  Returns how many things changed."""
        changed = 0
        for thing in [*self.submissions.values(), *self.comments.values()]:
            if thing.author == username:
                thing.author = "[deleted]"
                changed += 1
        return changed

    def add_mentions_burst(
        self, subreddit: str, slug: str, count: int, start: dt.datetime, end: dt.datetime
    ) -> list[str]:
        """Add ``count`` submissions naming agency ``slug`` to a subreddit in [start, end), without
        comments: a news day that makes Reddit's search stop before the window start.  They are in the
        ground truth."""
        agency = next(a for a in self.agencies if a.slug == slug)
        span = (end - start).total_seconds()
        latest = max((int(s, 36) for s in self.submissions), default=self._next_submission)
        self._next_submission = max(self._next_submission, latest)
        ids: list[str] = []
        for i in range(count):
            self._next_submission += 1
            sid = to_base36(self._next_submission)
            title = self.rng.choice(_AGENCY_TITLES).format(ref=agency.refs[0], place=self.rng.choice(_PLACES))
            self.submissions[sid] = RedditSubmission(
                id=sid, subreddit=self._sub_name(subreddit), author=self.rng.choice(self._users), title=title,
                selftext="", created=start + dt.timedelta(seconds=span * (i + 0.5) / count), score=1,
                agencies=[slug],
            )
            ids.append(sid)
        self._index()
        return ids

    def _scope(self, agencies: Iterable[str] | None, unreadable: Iterable[str]) -> tuple[set[str], set[str]]:
        """The wanted agencies (all when None) and the lower-cased subreddits the collector reads for them:
        the global ones and the agencies' own, less the ``unreadable`` (private) ones."""
        wanted = set(agencies) if agencies is not None else {a.slug for a in self.agencies}
        readable = {s.lower() for s in GLOBAL_SUBREDDITS}
        for agency in self.agencies:
            if agency.slug in wanted:
                readable |= {s.lower() for s in agency.subreddits}
        return wanted, readable - {s.lower().removeprefix("r/") for s in unreadable}

    def submission_ids(
        self,
        start: dt.datetime,
        end: dt.datetime,
        agencies: Iterable[str] | None = None,
        unreadable: Iterable[str] = (),
    ) -> set[str]:
        """Submissions in [start, end) about the given agencies (all agencies when None), in the
        subreddits the collector reads (global searches and the agencies' own subreddits), less the
        ``unreadable`` (private) ones."""
        return self._submissions_naming(start, end, agencies, unreadable, lambda s: s.agencies)

    def ambiguous_truth(
        self,
        start: dt.datetime,
        end: dt.datetime,
        agencies: Iterable[str] | None = None,
        unreadable: Iterable[str] = (),
    ) -> set[str]:
        """Submissions in [start, end) that name no agency for certain but leave a shared name unsettled
        with one of the agencies among its candidates, in the subreddits a listing reads: stored as
        ambiguities (attributed to none) without their comment trees.  Only the listings of those
        subreddits see them (a search for agency names does not find "APD meeting moved to Friday"); their
        comments that name an agency are in :meth:`comment_truth`."""
        return self._submissions_naming(start, end, agencies, unreadable,
                                        lambda s: () if s.agencies else s.unsettled)

    def _submissions_naming(
        self,
        start: dt.datetime,
        end: dt.datetime,
        agencies: Iterable[str] | None,
        unreadable: Iterable[str],
        names: Callable[[RedditSubmission], Iterable[str]],
    ) -> set[str]:
        """Ids of the submissions in [start, end), in a subreddit read for ``agencies``, whose ``names``
        include a wanted agency."""
        wanted, readable = self._scope(agencies, unreadable)
        return {
            s.id
            for s in self.submissions.values()
            if start <= s.created < end and not wanted.isdisjoint(names(s)) and s.subreddit.lower() in readable
        }

    def comment_truth(
        self,
        start: dt.datetime,
        end: dt.datetime,
        agencies: Iterable[str] | None = None,
        unreadable: Iterable[str] = (),
    ) -> set[str]:
        """Comments in [start, end) that name one of the agencies, in the subreddits a listing-first
        plan reads (global and the agencies' own), with their submissions (stored as context)."""
        wanted, readable = self._scope(agencies, unreadable)
        ids: set[str] = set()
        for comment in self.comments.values():
            if not (start <= comment.created < end) or comment.subreddit.lower() not in readable:
                continue
            if set(comment.agencies) & wanted:
                ids.update((comment.id, comment.link_id))
        return ids

    def ground_truth(
        self,
        start: dt.datetime,
        end: dt.datetime,
        agencies: Iterable[str] | None = None,
        unreadable: Iterable[str] = (),
    ) -> set[str]:
        """Ids a collector must store for this window as attributed threads: the submissions about the
        agencies and all their comments (a listing also stores :meth:`ambiguous_truth`)."""
        ids = self.submission_ids(start, end, agencies, unreadable)
        for sid in list(ids):
            ids.update(self.submissions[sid].all_comments)
        return ids
