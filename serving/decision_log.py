"""The decision log: every decision the service or batch returns, with its propensity, for future
off-policy evaluation (JSON Lines, one object per customer decision).

This is a data file, not an application log: it holds customer ids on purpose, so that decisions can
be joined with later outcomes. Each call appends its lines with one ``write`` on a file opened with
``O_APPEND``, so concurrent workers do not interleave lines.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIELDS = (
    "customer_id",
    "model_version",
    "churn_probability",
    "defense_target",
    "cold_start",
    "no_contact_reason",
)


class DecisionLog:
    """Append-only JSON Lines file of decisions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(
        self, results: Iterable[Mapping[str, Any]], *, cutoff: Any, source: str, request_id: str | None = None
    ) -> int:
        """Append one line per result; returns the number of lines written."""
        logged_at = datetime.now(UTC).isoformat()
        lines = []
        for r in results:
            nba = r.get("next_best_action") or {}
            record = {
                "logged_at": logged_at,
                "source": source,
                "request_id": request_id,
                "cutoff": str(cutoff),
                **{k: r.get(k) for k in FIELDS},
                "action": nba.get("action"),
                "channel": nba.get("channel"),
                "offer": nba.get("offer"),
                "propensity": nba.get("propensity"),
                "expected_incremental_value": nba.get("expected_incremental_value"),
            }
            lines.append(json.dumps(record, default=str))
        if not lines:
            return 0
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        return len(lines)


def read_decision_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a decision log."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
