"""The exit statuses of ``engage retrain``, for a scheduler to alert on (``--help``, the README and the job)."""

from __future__ import annotations

FINISHED, BAD_INPUT, REFUSED, REJECTED, LOCKED = 0, 2, 3, 4, 5

EXIT_STATUSES: dict[int, str] = {
    FINISHED: "finished: promoted, or unchanged (same data and code as the champion)",
    1: "unexpected error (a bug; the traceback is printed)",
    BAD_INPUT: "bad input or options; nothing written",
    REFUSED: "a data gate refused (stale, volume collapse, vanished channel/kind, missing values); nothing trained",
    REJECTED: "the challenger was rejected or tied: the champion keeps serving (reason on the model version)",
    LOCKED: "another engage retrain holds the lock, or the registry stayed locked",
}
