"""The ``trustwatch`` command line: the same functions the DAG tasks call, for operators and tests."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from trustwatch import tasks
from trustwatch.settings import ConfigError


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def cmd_db(args: argparse.Namespace) -> int:
    from trustwatch import migrate
    from trustwatch.settings import redact_url, store_url

    url = store_url()
    if args.action == "upgrade":
        revision = tasks.upgrade_store()
        print(f"store at {redact_url(url.url)} ({url.source}) is at revision {revision}")
    elif args.action == "downgrade":
        migrate.downgrade(tasks.engine(check=False), args.revision)
        print(f"store downgraded to {args.revision}")
    else:
        print(migrate.current(tasks.engine(check=False)) or "base (empty store)")
    return 0


def cmd_agencies(args: argparse.Namespace) -> int:
    if args.action == "sync":
        _print_json(tasks.sync_registry(recheck=True))  # by hand: compare and match ambiguities again
    elif args.action == "list":
        reg = tasks.registry()
        entries = reg.entries
        if args.state or args.kind:
            entries = reg.pick(states=args.state or (), kinds=args.kind or ())
        if args.tracked:
            entries = [e for e in entries if e.tracked and e.active]
        for e in entries:
            flags = ("tracked" if e.tracked else "known") + ("" if e.matched else ",not-matched")
            print(f"{e.slug:40} {e.ori or '-':9} {e.kind:9} {e.state or '--':3} {flags:19} {e.name}")
        print(f"{len(entries)} agencies", file=sys.stderr)
    else:
        unsettled: list = []
        matches = tasks.matcher().match(args.text, community=args.community, unsettled=unsettled)
        _print_json([{"agency": m.agency_slug, "term": m.term, "kind": m.kind, "start": m.start, "end": m.end}
                     for m in matches] + [u.to_dict() for u in unsettled])
    return 0


def cmd_partitions(args: argparse.Namespace) -> int:
    from trustwatch.models import partitions

    _print_json({"created": partitions.prepare(tasks.engine(), ahead=args.ahead)})
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trustwatch.models import partitions

    result = partitions.detach_month(tasks.engine(), partitions.parse_month(args.month), Path(args.archive))
    _print_json({"month": result.month, "detach_seconds": round(result.detach_seconds, 4), "rows": result.rows,
                 "files": result.files, "ledger_rows_archived": result.ledger_rows,
                 "seconds": round(result.seconds, 3)})
    return 0


def cmd_queries(args: argparse.Namespace) -> int:
    _print_json(tasks.compile_queries(args.platform, args.agency))
    # The cost of the tracked set: estimated posts read a month (stderr, so stdout stays the JSON list).
    print(json.dumps({"estimate": tasks.estimate_monthly_reads(args.platform, args.agency)}), file=sys.stderr)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    request = tasks.validate_request(args.platform, args.start, args.end, args.agency, manual=True)
    tasks.sync_registry()
    queries = tasks.compile_queries(args.platform, request["agencies"] or None)
    print(f"collecting {args.platform} [{request['start']}, {request['end']}) with {len(queries)} queries"
          + (" (dry run: counts only)" if args.dry_run else ""), flush=True)
    if args.platform == "reddit":
        print(tasks.reddit_plan_estimate(request["agencies"] or None)["description"], flush=True)
    summaries = []
    for query in queries:
        summary = tasks.collect_query(args.platform, query, request["start"], request["end"],
                                      dry_run=args.dry_run, progress=True)
        summaries.append(summary)
        if summary.get("skipped"):
            print(f"  {query['key']}: collected already (run {summary['run_id']}), nothing read")
        elif args.dry_run:
            print(f"  {query['key']}: about {summary['expected_posts']} posts")
    _print_json(tasks.summarize(args.platform, summaries))
    return 0


def cmd_revisit(args: argparse.Namespace) -> int:
    _print_json(tasks.revisit_reddit(now=args.now, ages=args.ages, budget=args.budget))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from trustwatch.collectors.archive import ImportSummary

    results = tasks.import_archive(args.platform, args.files, keep_all=args.all, progress=True,
                                   raise_on_failure=False)
    for r in results:
        print(ImportSummary(**r).line(), file=sys.stderr if r["status"] == "failed" else sys.stdout)
    return 1 if any(r["status"] == "failed" for r in results) else 0


def cmd_enrich(args: argparse.Namespace) -> int:
    _print_json(tasks.enrich(batch_size=args.batch_size, workers=args.workers))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import datetime as dt

    from trustwatch.analysis.report import unscored_language

    print(tasks.report(args.out, args.agency, args.since, args.state, args.kind))
    # The report says it too; an operator reading the terminal should not have to open it to learn it.
    since = dt.date.fromisoformat(args.since[:10]) if args.since else None  # tasks.report checked it
    print(unscored_language(tasks.engine(), since).sentence())
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from trustwatch.sandbox.server import serve

    serve(args.host, args.port, args.seed, args.posts, days=args.days, events=args.events)
    return 0


def cmd_compliance(args: argparse.Namespace) -> int:
    _print_json(tasks.compliance(max_age_days=args.max_age_days, platforms=args.platform))
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    _print_json(tasks.refresh_metrics(dry_run=args.dry_run, now=args.now))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by tests to check the contract)."""
    parser = argparse.ArgumentParser(prog="trustwatch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="migrate the store")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?", default="base", help="downgrade target (default: base)")
    db.set_defaults(func=cmd_db)

    ag = sub.add_parser("agencies", help="the agency registry")
    ag_sub = ag.add_subparsers(dest="action", required=True)
    ag_sub.add_parser("sync", help="load agencies/*.yaml into the store and match stored ambiguities again "
                      "(always compares; collect runs skip an unchanged registry)")
    ls = ag_sub.add_parser("list", help="list the registry (slug, ORI, kind, state, tracked or known, name)")
    ls.add_argument("--state", action="append", help="only agencies of this state (two letters; repeatable)")
    ls.add_argument("--kind", action="append", help="only this kind: municipal, sheriff, state... (repeatable)")
    ls.add_argument("--tracked", action="store_true", help="only tracked agencies (queries compiled for them)")
    match = ag_sub.add_parser("match", help="print the agencies found in TEXT (JSON)")
    match.add_argument("text")
    match.add_argument("--community", help="the subreddit the text was posted in, e.g. r/nyc")
    ag.set_defaults(func=cmd_agencies)

    pa = sub.add_parser("partitions", help="PostgreSQL: monthly partitions of posts, mentions and snapshots")
    pa_sub = pa.add_subparsers(dest="action", required=True)
    prep = pa_sub.add_parser("prepare", help="create this month's and the coming months' partitions, and move "
                                             "rows out of the default partition (the DAGs' sync step does it too)")
    prep.add_argument("--ahead", type=int, default=2, help="months to prepare after the current one (default 2)")
    pa.set_defaults(func=cmd_partitions)

    ret = sub.add_parser("retention", help="PostgreSQL: detach a month of posts, archive it and drop it")
    ret_sub = ret.add_subparsers(dest="action", required=True)
    det = ret_sub.add_parser("detach", help="detach the month's partitions (metadata only), write them to gzip "
                                            "CSV files in the archive folder, then drop them")
    det.add_argument("--month", required=True, help="the month of the posts' created_at, YYYY-MM (UTC)")
    det.add_argument("--archive", required=True, help="folder for <table>_<YYYY_MM>.csv.gz and a manifest")
    ret.set_defaults(func=cmd_retention)

    q = sub.add_parser("queries", help="print the compiled search queries")
    q.add_argument("platform", choices=list(tasks.PLATFORMS))
    q.add_argument("--agency", action="append", help="only this agency (repeatable)")
    q.set_defaults(func=cmd_queries)

    c = sub.add_parser("collect", help="collect a window of posts")
    c.add_argument("platform", choices=list(tasks.PLATFORMS))
    c.add_argument("--start", required=True, help="ISO 8601 start (inclusive), e.g. 2026-11-20T00:00:00Z")
    c.add_argument("--end", required=True, help="ISO 8601 end (exclusive)")
    c.add_argument("--agency", action="append", help="only this agency's queries (repeatable)")
    c.add_argument("--dry-run", action="store_true", help="X: ask the counts endpoint, collect nothing")
    c.set_defaults(func=cmd_collect)

    rv = sub.add_parser("revisit", help="read due Reddit threads again for late comments and final scores")
    rv.add_argument("platform", choices=["reddit"])
    rv.add_argument("--now", help="ISO 8601 time to take as now (default: the current time)")
    rv.add_argument("--ages", help="revisit ages, e.g. 6h,24h,72h,7d (default: connection extra or those)")
    rv.add_argument("--budget", type=int, help="requests per thread and revisit (default 10)")
    rv.set_defaults(func=cmd_revisit)

    imp = sub.add_parser("import", help="import archive files (twarc2 JSONL, Reddit dumps; plain, .gz, .zst)")
    imp.add_argument("platform", choices=list(tasks.PLATFORMS))
    imp.add_argument("files", nargs="+", help="files, or folders of files")
    imp.add_argument("--all", action="store_true", help="keep posts that mention no agency too")
    imp.set_defaults(func=cmd_import)

    en = sub.add_parser("enrich", help="score unscored posts and refresh the trend rollups")
    en.add_argument("--batch-size", type=int, default=1000)
    en.add_argument("--workers", type=int, default=None,
                    help="scoring processes (default: TRUSTWATCH_ENRICH_WORKERS, else the machine's cores)")
    en.set_defaults(func=cmd_enrich)

    rep = sub.add_parser("report", help="write the HTML trend report")
    rep.add_argument("--agency", action="append", help="only this agency (repeatable)")
    rep.add_argument("--since", help="first day, YYYY-MM-DD")
    rep.add_argument("--state", action="append", help="only agencies of this state, e.g. TX (repeatable)")
    rep.add_argument("--kind", action="append", help="only agencies of this kind, e.g. sheriff (repeatable)")
    rep.add_argument("--out", required=True, help="the HTML file to write")
    rep.set_defaults(func=cmd_report)

    s = sub.add_parser("sandbox", help="local stand-ins for the X and Reddit APIs")
    s_sub = s.add_subparsers(dest="action", required=True)
    serve = s_sub.add_parser("serve", help="serve both APIs on one port until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--posts", type=int, default=2000)
    serve.add_argument("--days", type=int, default=7, help="span of the corpus, ending at the current hour")
    serve.add_argument("--events", action="store_true",
                       help="demo story lines: weekly rhythm, an incident spike, a slow recovery (X)")
    s.set_defaults(func=cmd_sandbox)

    comp = sub.add_parser("compliance", help="check stored posts (X: batch compliance jobs); tombstone what is gone")
    comp.add_argument("--max-age-days", type=float, default=None,
                      help="Reddit: only posts younger than this (default: TRUSTWATCH_COMPLIANCE_MAX_AGE_DAYS or "
                           "30); X checks every stored post through batch compliance jobs")
    comp.add_argument("--platform", action="append", choices=list(tasks.PLATFORMS),
                      help="only this platform (repeatable; default: every configured one)")
    comp.set_defaults(func=cmd_compliance)

    ref = sub.add_parser("refresh", help="read X posts' engagement again at 1 and 7 days (billed reads)")
    ref.add_argument("platform", choices=["x"], help="only X: Reddit scores are read again by revisits")
    ref.add_argument("--dry-run", action="store_true", help="count the posts due and the billed reads, read nothing")
    ref.add_argument("--now", default=None, help="ISO time to plan for (default: now)")
    ref.set_defaults(func=cmd_refresh)
    return parser


def _store_unreachable(exc: BaseException) -> bool:
    """The database went away (stopped, restarted, network): SQLAlchemy's or the driver's own error."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    names = {c.__name__ for c in type(exc).__mro__}
    return isinstance(exc, OperationalError | InterfaceError) or bool(
        names & {"OperationalError", "InterfaceError", "AdminShutdown"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; expected errors print one clear line, not a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ConfigError, tasks.RequestError) as exc:
        print(f"trustwatch: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # trustwatch's own errors (API, store, archive) carry a message written for the operator
        if type(exc).__module__.split(".")[0] in ("collectors", "models", "trustwatch", "analysis"):
            print(f"trustwatch: {exc}", file=sys.stderr)
            return 1
        if _store_unreachable(exc):
            from trustwatch.settings import redact_url

            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            print(f"trustwatch: the store cannot be reached ({redact_url(cause[0] if cause else type(exc).__name__)}"
                  "); committed pages are kept, and the next run takes the interrupted one over", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("trustwatch: interrupted; committed pages are kept and the next run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
