"""The data gates on profiles of a simulated world and of its broken exports: each case refused by its gate."""

from __future__ import annotations

import pandas as pd
import pytest

from training.retrain.gates import data_gates
from training.retrain.profile import data_profile
from training.retrain.settings import Thresholds
from training.retrain.snapshot import cut_tables

T = Thresholds()


@pytest.fixture(scope="module")
def world(make_world):
    return make_world(600, 200, seed=3)


def _profile(tables, as_of):
    return data_profile(cut_tables(tables, as_of), as_of, T.window_days)


def _as_of(tables, days_before_end=30):
    end = pd.to_datetime(tables.touchpoints["ts"], utc=True).max().floor("D")
    return end - pd.Timedelta(days=days_before_end)


def _failed(gates):
    return [g.name for g in gates if not g.passed]


def test_a_healthy_week_passes_every_gate(world):
    as_of = _as_of(world)
    reference = _profile(world, as_of - pd.Timedelta(days=7))
    gates = data_gates(_profile(world, as_of), reference, T)
    assert [g.name for g in gates] == ["freshness", "volume", "vanished", "missing"]
    assert _failed(gates) == [], [g.message for g in gates]


def test_without_reference_only_freshness_is_judged(world):
    gates = data_gates(_profile(world, _as_of(world)), None, T)
    assert all(g.passed for g in gates)
    assert "no reference" in gates[1].message


def test_stale_export_is_refused_with_its_figures(world):
    as_of = _as_of(world)
    # the export stopped at as_of; the job runs ten days later
    tp = world.touchpoints[pd.to_datetime(world.touchpoints["ts"], utc=True) < as_of]
    late = data_profile(cut_tables(world.with_(touchpoints=tp), as_of + pd.Timedelta(days=10)),
                        as_of + pd.Timedelta(days=10), T.window_days)
    gates = data_gates(late, None, T)
    assert _failed(gates) == ["freshness"]
    assert gates[0].figures["staleness_days"] > 9
    assert "stale" in gates[0].message


def _window(tables, as_of):
    ts = pd.to_datetime(tables.touchpoints["ts"], utc=True)
    return (ts >= as_of - pd.Timedelta(days=T.window_days)) & (ts < as_of)


def test_volume_collapse_is_refused(world):
    as_of = _as_of(world)
    reference = _profile(world, as_of - pd.Timedelta(days=7))
    tp = world.touchpoints
    inside = _window(world, as_of).to_numpy()
    keep = ~inside | (pd.Series(range(len(tp))).to_numpy() % 5 == 0)  # 80 % of the newest week lost
    gates = data_gates(_profile(world.with_(touchpoints=tp[keep]), as_of), reference, T)
    assert "volume" in _failed(gates)
    assert gates[1].figures["touchpoints_per_day"]["ratio"] < 0.5


def test_vanished_channel_is_refused_and_named(world):
    as_of = _as_of(world)
    reference = _profile(world, as_of - pd.Timedelta(days=7))
    tp = world.touchpoints
    broken = tp[~(_window(world, as_of).to_numpy() & (tp["channel"] == "web").to_numpy())]
    gates = data_gates(_profile(world.with_(touchpoints=broken), as_of), reference, T)
    assert "vanished" in _failed(gates)
    assert "channel:web" in gates[2].figures["vanished"]
    assert "channel:web" in gates[2].message


def test_missing_share_jump_is_refused(world):
    as_of = _as_of(world)
    reference = _profile(world, as_of - pd.Timedelta(days=7))
    tp = world.touchpoints.copy()
    tp.loc[_window(world, as_of).to_numpy(), "device"] = pd.NA
    gates = data_gates(_profile(world.with_(touchpoints=tp), as_of), reference, T)
    assert _failed(gates) == ["missing"]
    assert "touchpoints.device" in gates[3].figures["jumps"]


def test_cut_ignores_events_at_or_after_as_of(world):
    as_of = _as_of(world)
    cut = cut_tables(world, as_of)
    assert pd.to_datetime(cut.touchpoints["ts"], utc=True).max() < as_of
    assert cut.truth is None
    assert cut.meta["manifest"]["end"] == as_of.isoformat()
