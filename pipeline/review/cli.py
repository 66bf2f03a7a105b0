"""`auditorybench review`: serve the review page, add reviewers, export their decisions for the filter stage.

    auditorybench review [serve] [BUILD_OR_RELEASE] [--host H] [--port N]
    auditorybench review add-reviewer NAME [BUILD_OR_RELEASE] [--host H] [--port N]   (prints the personal URL)
    auditorybench review export [BUILD_OR_RELEASE] [--out CSV]   (and the reviewers' comments to comments.csv beside it)

BUILD_OR_RELEASE defaults to build/<corpus id> (build/demo for the demo corpus).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path

from benchmark.errors import InputError

__all__ = ["add_parser", "cmd_review", "reviewer_url"]

ACTIONS = ("serve", "add-reviewer", "export")
DEFAULT_PORT = 8765


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `review` subcommand on the main parser's subparsers."""
    p = subparsers.add_parser("review", help="listen to clips and keep, drop or fix items (web page); add reviewers; export decisions",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(fn=cmd_review)
    p.add_argument("words", nargs="*", metavar="[ACTION] [NAME] [BUILD_OR_RELEASE]",
                   help=f"action: {', '.join(ACTIONS)} (default serve); add-reviewer takes a NAME first")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--out", default=None, help="export: the decisions CSV (default: <build>/review/decisions.csv, which the filter reads); "
                                               "comments go to comments.csv in the same folder (the filter does not read it)")
    p.add_argument("--build-root", default=os.environ.get("AUDITORYBENCH_BUILD", "build"), help="where builds live (default: build)")
    p.add_argument("--corpus-id", default=None, help="the build to review when no path is given (default: demo, or $CORPUS's folder name)")
    p.add_argument("--quiet", action="store_true", help="only warnings from the server")
    return p


def reviewer_url(host: str, port: int, token: str) -> str:
    """The personal URL for the server `serve` starts with the same --host and --port: that host, or this machine's
    name when the server listens on every address (0.0.0.0, ::), which is no address a browser can open."""
    shown = socket.gethostname() if host in ("0.0.0.0", "", "::", "[::]") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/?token={token}"


def _parse(words: list[str]) -> tuple[str, str | None, str | None]:
    """(action, reviewer name, target path) from the positional words."""
    if words and words[0] in ACTIONS:
        action, rest = words[0], words[1:]
    else:
        action, rest = "serve", words
    name = None
    if action == "add-reviewer":
        if not rest:
            raise InputError("review add-reviewer: give the reviewer's NAME")
        name, rest = rest[0], rest[1:]
    if len(rest) > 1:
        raise InputError(f"review {action}: one BUILD_OR_RELEASE at most (got {' '.join(rest)})")
    return action, name, rest[0] if rest else None


def _default_target(args) -> Path:
    from pipeline.contract import DEMO_CORPUS, corpus_id

    return Path(args.build_root) / (args.corpus_id or corpus_id(os.environ.get("CORPUS", str(DEMO_CORPUS))))


def cmd_review(args) -> None:
    from pipeline.review.store import ReviewStore
    from pipeline.review.target import load_target

    action, name, path = _parse(args.words)
    target = load_target(path or _default_target(args), build_root=args.build_root)
    if action == "add-reviewer":
        with ReviewStore(target.db_path) as store:
            token = store.add_reviewer(name)
        print(reviewer_url(args.host, args.port, token))
        return
    if action == "export":
        from pipeline.review.export import COMMENTS_FILE, write_comments, write_decisions

        out = Path(args.out) if args.out else target.export_path
        if out.name == COMMENTS_FILE:
            raise InputError(f"review export --out {out}: {COMMENTS_FILE} is the comments file's name; choose another")
        with ReviewStore(target.db_path) as store:
            decisions = store.decisions()
        figures = write_decisions(decisions, out)
        figures["comments"] = write_comments(decisions, out.with_name(COMMENTS_FILE))
        print(json.dumps(figures, indent=2, sort_keys=True))
        hint = ("the filter reads it: `make release` applies it (bump release.version in params.yaml if this version "
                "was released already: a release's name-version never changes content)"
                if target.kind == "build" and out.resolve() == target.export_path.resolve()
                else f"to apply it, set filter.review_decisions (AUDITORYBENCH_FILTER_REVIEW_DECISIONS={out}) and rebuild")
        print(f"wrote {out}; {hint}")
        return
    serve(target, args.host, args.port, quiet=args.quiet)


def serve(target, host: str, port: int, quiet: bool = False) -> None:
    import uvicorn

    from pipeline.review.app import LOOPBACK_HOSTS, create_app
    from pipeline.review.store import ReviewStore

    with ReviewStore(target.db_path) as store:
        reviewers = store.reviewers()
    loopback = host in LOOPBACK_HOSTS
    app = create_app(target, allowed_hosts=list(LOOPBACK_HOSTS) if loopback else None)
    print(f"reviewing {len(target.items)} items of {target.root} ({target.kind}); decisions in {target.db_path}")
    if not reviewers:
        print("no reviewers yet: `auditorybench review add-reviewer NAME` prints a personal URL")
    if not loopback:
        print(f"warning: serving on {host}, not loopback: anyone who can reach it and holds a token can review (plain HTTP)")
    # no access log: a reviewer's first request carries their token in its URL
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info", access_log=False)
