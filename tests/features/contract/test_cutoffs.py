"""Which cutoff a command uses when none is given, and that it can say why."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract.cutoffs import SOURCES, choose_cutoff, evaluation_cutoff, labels_cutoff, scoring_cutoff
from features.contract.schema import Tables

UTC = "UTC"


def tables(*, touch: list[str] = (), labels: pd.DataFrame | None = None, manifest: str | None = None) -> Tables:
    customers = pd.DataFrame({"customer_id": ["a", "b"]})
    tp = pd.DataFrame({"customer_id": ["a"] * len(touch), "ts": pd.to_datetime(list(touch), utc=True)})
    return Tables(customers=customers, touchpoints=tp, labels=labels,
                  meta={"manifest": {"cutoff": manifest}} if manifest else {})


LABELS = pd.DataFrame({"customer_id": ["a", "b"], "label": [0, 1]})


def test_scoring_cutoff_follows_given_manifest_labels_then_now():
    dated = LABELS.assign(cutoff=pd.Timestamp("2024-03-01", tz=UTC))
    cases = [
        (scoring_cutoff(tables(labels=dated, manifest="2024-05-01"), "2024-06-30"), "2024-06-30", "given"),
        (scoring_cutoff(tables(labels=dated, manifest="2024-05-01")), "2024-05-01", "manifest"),
        (scoring_cutoff(tables(labels=dated, touch=["2024-04-10"])), "2024-03-01", "labels"),
        # labels without a cutoff column refer to the end of the log, or (no dates at all) the nominal date
        (scoring_cutoff(tables(labels=LABELS, touch=["2024-04-10 13:00"])), "2024-04-11", "labels_end_of_log"),
        (scoring_cutoff(tables(labels=LABELS)), "2000-01-01", "labels_nominal"),
    ]
    for choice, at, source in cases:
        assert choice.at == pd.Timestamp(at, tz=UTC) and choice.source == source
        assert SOURCES[source] in choice.describe()
    now = scoring_cutoff(tables(touch=["2024-04-10"]))  # nothing to go by but the clock
    assert now.source == "now" and abs(now.at - pd.Timestamp.now(tz=UTC)) < pd.Timedelta(minutes=5)


def test_training_and_scoring_agree_on_the_labels_cutoff():
    for t in (tables(labels=LABELS), tables(labels=LABELS, touch=["2024-04-10"])):
        assert labels_cutoff(t) == scoring_cutoff(t)
    assert evaluation_cutoff(tables(touch=["2024-04-10"])) == pd.Timestamp("2024-04-11", tz=UTC)
    assert choose_cutoff(tables(), fallback="none").source == "none"
    two = LABELS.assign(cutoff=pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True))
    with pytest.raises(ValueError, match="2 different cutoffs"):
        scoring_cutoff(tables(labels=two))
