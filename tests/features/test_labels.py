"""Churn labels: the definition on hand-made histories, point-in-time safety, agreement with the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract.schema import Tables
from features.contract.validate import validate_tables
from features.labels import make_labels, monthly_cutoffs

CUT = pd.Timestamp("2024-06-01", tz="UTC")


def _day(offset: float) -> pd.Timestamp:
    return CUT + pd.Timedelta(days=offset)


def _customers(signup_days: dict[str, float]) -> pd.DataFrame:
    """Customers signed up the given number of days from CUT, each consenting to every channel."""
    return pd.DataFrame(
        {
            "customer_id": list(signup_days),
            "signup_ts": [_day(d) for d in signup_days.values()],
            **{f"consent_{c}": True for c in ("email", "sms", "push", "call")},
        }
    )


def _validated(customers: pd.DataFrame, history: str) -> Tables:
    """Contract tables from a history: one touchpoint a line, ``customer_id day channel kind direction``, with
    ``day`` the offset from CUT in days."""
    rows = [line.split() for line in history.strip().splitlines()]
    tp = pd.DataFrame(rows, columns=["customer_id", "day", "channel", "kind", "direction"])
    tp["ts"] = [_day(float(d)) for d in tp.pop("day")]
    tables, _ = validate_tables(Tables(customers=customers, touchpoints=tp))
    return tables


def _tables() -> Tables:
    ids = ["stay", "cancel", "quiet", "late_signup", "gone", "passive", "dormant", "back", "buyer_out"]
    history = """
        stay         -10   web          visit         inbound
        stay          30   web          visit         inbound
        cancel        -5   app          visit         inbound
        cancel        20   call_center  cancel        inbound
        cancel        25   app          visit         inbound
        quiet        -20   store        purchase      inbound
        quiet         10   email        impression    outbound
        late_signup   10   web          visit         inbound
        gone         -30   web          visit         inbound
        gone          -3   call_center  cancel        inbound
        gone          10   web          visit         inbound
        passive       -5   email        impression    inbound
        passive        5   web          visit         inbound
        dormant     -120   web          visit         inbound
        dormant        5   web          visit         inbound
        back         -60   web          cancel        inbound
        back          -2   web          visit         inbound
        back           3   web          visit         inbound
        buyer_out     -1   store        purchase      outbound
        buyer_out   89.9   store        purchase      outbound
    """
    return _validated(_customers({**dict.fromkeys(ids, -400), "late_signup": 5}), history)


def test_definition_on_hand_made_histories():
    labels = make_labels(_tables(), [CUT]).set_index("customer_id")["label"].to_dict()
    # eligible: active touch or purchase in the 90 days before, signed up before, no cancel since
    assert labels == {"stay": 0, "cancel": 1, "quiet": 1, "back": 0, "buyer_out": 0}


def test_output_columns_and_types():
    labels = make_labels(_tables(), [CUT, _day(30)])
    assert list(labels.columns) == ["customer_id", "cutoff", "label"]
    assert str(labels["cutoff"].dtype) == "datetime64[ns, UTC]"
    assert set(labels["label"].unique()) <= {0, 1}
    assert labels["cutoff"].is_monotonic_increasing


def test_horizon_and_inactivity_are_parameters():
    tables = _tables()
    short = make_labels(tables, [CUT], horizon_days=15).set_index("customer_id")["label"]
    assert short["stay"] == 1  # its next visit is 30 days later, outside a 15-day horizon
    wide = make_labels(tables, [CUT], inactivity_days=200).set_index("customer_id")["label"]
    assert "dormant" in wide.index


def test_activity_kinds_restrict_activity_to_purchases():
    labels = make_labels(_tables(), [CUT], activity_kinds=("purchase",)).set_index("customer_id")["label"]
    assert set(labels.index) == {"quiet", "buyer_out"}
    assert labels.to_dict() == {"quiet": 1, "buyer_out": 0}


def test_outreach_reactions_keep_eligibility_but_do_not_retain():
    # the reader is eligible through a reaction alone
    history = """
        reader    -10   email   message_open     inbound
        reader     20   email   message_open     inbound
        clicker   -10   web     visit            inbound
        clicker    20   email   message_click    inbound
        clicker    30   store   offer_redeemed   inbound
        visitor   -10   web     visit            inbound
        visitor    20   web     visit            inbound
    """
    tables = _validated(_customers(dict.fromkeys(["reader", "clicker", "visitor"], -400)), history)
    own = make_labels(tables, [CUT]).set_index("customer_id")["label"].to_dict()
    assert own == {"reader": 1, "clicker": 1, "visitor": 0}
    counted = make_labels(tables, [CUT], outcome_excludes=()).set_index("customer_id")["label"].to_dict()
    assert counted == {"reader": 0, "clicker": 0, "visitor": 0}


def test_censored_horizon_raises():
    with pytest.raises(ValueError, match="censored"):
        make_labels(_tables(), [CUT], observed_until=_day(60))


@pytest.fixture(scope="module")
def world(make_world) -> Tables:
    return make_world(1500, 300, seed=5)


def test_events_after_the_horizon_change_nothing(world):
    cutoffs = [pd.Timestamp(world.meta["manifest"]["cutoff"]) - pd.Timedelta(days=d) for d in (120, 60, 0)]
    before = make_labels(world, cutoffs)
    tp = world.touchpoints
    late = tp.sample(3000, random_state=1, replace=True).copy()
    late["ts"] = late["ts"].max() + pd.Timedelta(days=1) + pd.to_timedelta(np.arange(len(late)), unit="s")
    late["kind"] = late["kind"].where(np.arange(len(late)) % 2 == 0, "cancel")
    after = make_labels(world.with_(touchpoints=pd.concat([tp, late], ignore_index=True)), cutoffs)
    pd.testing.assert_frame_equal(before, after)


def test_row_order_changes_nothing(world):
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    shuffled = world.touchpoints.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        make_labels(world, [cutoff]), make_labels(world.with_(touchpoints=shuffled), [cutoff])
    )


def test_labels_agree_with_the_simulated_outcome(world):
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    labels = make_labels(world, [cutoff], horizon_days=world.meta["manifest"]["horizon_days"])
    truth = world.truth.set_index(world.truth["customer_id"].astype(str))["churned"]
    assert len(labels) > 500
    np.testing.assert_array_equal(labels["label"].to_numpy(), truth.reindex(labels["customer_id"]).to_numpy())


def test_monthly_cutoffs():
    got = monthly_cutoffs("2024-01-15", "2024-05-01")
    assert [c.strftime("%Y-%m-%d") for c in got] == ["2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01"]
    assert all(c.tzinfo is not None for c in got)


def test_categorical_columns_are_read_per_category_with_the_same_results(make_world) -> None:
    """Labels and activity flags from the normal form's categorical columns equal those from the same columns
    as plain text (the row-by-row path, which the categorical one replaces to spare a text copy of every row)."""
    import dataclasses

    from features.labels import activity_arrays, by_text

    world = make_world(300, 200, seed=2)
    tp = world.touchpoints
    assert all(isinstance(tp[c].dtype, pd.CategoricalDtype) for c in ("customer_id", "kind", "direction"))
    as_text = dataclasses.replace(world, touchpoints=tp.astype({"customer_id": str, "kind": str, "direction": str}))
    for got, want in zip(activity_arrays(world), activity_arrays(as_text), strict=True):
        assert got.equals(want) if isinstance(got, pd.Index) else np.array_equal(got, want)
    start = tp["ts"].min()
    cutoffs = monthly_cutoffs(start + pd.Timedelta(days=40), start + pd.Timedelta(days=100))
    for kinds in (None, ("purchase",)):
        pd.testing.assert_frame_equal(make_labels(world, cutoffs, activity_kinds=kinds),
                                      make_labels(as_text, cutoffs, activity_kinds=kinds))
    # A missing category reads as astype(str) writes it.
    col = pd.Series(pd.Categorical(["a", None, "b"], categories=["a", "b"]))
    assert by_text(col, lambda t: t).tolist() == col.astype(str).tolist()
