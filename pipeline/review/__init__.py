"""Human review of a build's items: a small web app (Starlette) over the build, a SQLite store of reviewers' decisions,
agreement figures, and the export the filter stage reads. `auditorybench review --help` tells how to run it."""

from pipeline.review.agreement import agreement_summary, cohen_kappa, fleiss_kappa, krippendorff_alpha, majority
from pipeline.review.export import comments_table, decisions_table, write_comments, write_decisions
from pipeline.review.store import Decision, ReviewStore
from pipeline.review.target import ReviewTarget, load_target

__all__ = ["agreement_summary", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "majority", "comments_table",
           "decisions_table", "write_comments", "write_decisions", "Decision", "ReviewStore", "ReviewTarget", "load_target", "create_app"]


def __getattr__(name: str):
    if name == "create_app":  # the web framework is imported only when the app is wanted
        from pipeline.review.app import create_app

        return create_app
    raise AttributeError(name)
