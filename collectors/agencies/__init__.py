"""Agency registry, mention matcher and query compilers, one module each.

Attribution is the heart of the data: analysts trust a trend only if "which post mentions which
agency" is right.  The package is split so that each concern can change alone:

- ``text``: Unicode folding, offsets back into the original text, the one-for-one scan form;
- ``registry``: entries, validation and loading of the registry files;
- ``matcher``: the Aho-Corasick matcher and its disambiguation;
- ``queries``: the X and Reddit query compilers.

Every public name stays importable from ``trustwatch.collectors.agencies``.
"""

from trustwatch.collectors.agencies.matcher import Match, Matcher, Unsettled
from trustwatch.collectors.agencies.queries import (
    DEFAULT_GLOBAL_SUBREDDITS,
    REDDIT_MAX_QUERY_LENGTH,
    X_QUERY_LENGTHS,
    QueryError,
    RedditQuery,
    XQuery,
    compile_reddit_queries,
    compile_x_queries,
    query_version,
)
from trustwatch.collectors.agencies.registry import (
    DEFAULT_COMMUNITY_WORDS,
    DEFAULT_REGISTRY_DIR,
    GENERIC_WORDS,
    KINDS,
    US_STATES,
    AgencyEntry,
    Registry,
    RegistryError,
    entry_from_mapping,
    load_registry,
    validate_entries,
)
from trustwatch.collectors.agencies.text import (
    OffsetMap,
    _quick_scan,
    _scan_form,
    match_key,
    normalize_term,
    normalize_text,
)

__all__ = [
    "DEFAULT_COMMUNITY_WORDS",
    "DEFAULT_GLOBAL_SUBREDDITS",
    "DEFAULT_REGISTRY_DIR",
    "GENERIC_WORDS",
    "KINDS",
    "REDDIT_MAX_QUERY_LENGTH",
    "US_STATES",
    "X_QUERY_LENGTHS",
    "AgencyEntry",
    "Match",
    "Matcher",
    "OffsetMap",
    "QueryError",
    "RedditQuery",
    "Registry",
    "RegistryError",
    "Unsettled",
    "XQuery",
    "_quick_scan",
    "_scan_form",
    "compile_reddit_queries",
    "compile_x_queries",
    "entry_from_mapping",
    "load_registry",
    "match_key",
    "normalize_term",
    "normalize_text",
    "query_version",
    "validate_entries",
]
