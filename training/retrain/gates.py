"""The data gates: pure rules over two data profiles (:mod:`training.retrain.profile`) and the thresholds.

Each gate answers ``{name, passed, figures}`` and a one-line message naming its figures. A refused run trains
nothing: training on a stale or broken export would only teach the model the broken export.

* ``freshness``: the newest touchpoint is at most ``max_staleness_days`` before the as-of date (no reference
  needed);
* ``volume``: touchpoints and active customers per day stay at least ``min_volume_ratio`` of the reference's;
* ``vanished``: every channel and kind that carried at least ``min_reference_share`` of the reference's volume
  keeps at least ``min_share_ratio`` of its share (the classic broken export loses a whole source);
* ``missing``: no column's share of missing values rises by more than ``max_missing_increase``.

Without a reference profile (the first run, or a champion trained outside ``engage retrain``) only freshness
can be judged; the other gates pass and say why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from training.retrain.settings import Thresholds


@dataclass(frozen=True)
class Gate:
    """One gate's verdict: its name, whether it passed, the figures it compared, and a sentence saying so."""

    name: str
    passed: bool
    figures: dict
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def freshness_gate(profile: dict, t: Thresholds) -> Gate:
    """Refuse a stale export: the newest touchpoint too long before the as-of date."""
    newest = profile.get("newest_touchpoint")
    if newest is None:
        return Gate("freshness", False, {"newest_touchpoint": None}, "stale: the touchpoint log is empty")
    age = (pd.Timestamp(profile["as_of"]) - pd.Timestamp(newest)).total_seconds() / 86_400
    figures = {"as_of": profile["as_of"], "newest_touchpoint": newest, "staleness_days": round(age, 3),
               "max_staleness_days": t.max_staleness_days}
    ok = age <= t.max_staleness_days
    return Gate("freshness", ok, figures, f"{'fresh' if ok else 'stale'}: the newest touchpoint ({newest}) is "
                f"{age:.1f} days before --as-of {profile['as_of']} (at most {t.max_staleness_days:g} allowed)")


def volume_gate(profile: dict, reference: dict, t: Thresholds) -> Gate:
    """Refuse a collapsed volume: touchpoints or active customers per day far below the reference."""
    figures, low = {"min_volume_ratio": t.min_volume_ratio}, []
    for key in ("touchpoints_per_day", "customers_per_day"):
        ratio = profile[key] / reference[key] if reference.get(key) else float("inf")
        figures[key] = {"now": profile[key], "reference": reference.get(key), "ratio": round(ratio, 4)}
        if ratio < t.min_volume_ratio:
            low.append(f"{key.replace('_', ' ')} {profile[key]:g} vs {reference[key]:g} (ratio {ratio:.2f})")
    if low:
        return Gate("volume", False, figures, f"volume collapsed: {'; '.join(low)} < {t.min_volume_ratio:g}")
    return Gate("volume", True, figures, "volume within the reference's range")


def vanished_gate(profile: dict, reference: dict, t: Thresholds) -> Gate:
    """Refuse an export that lost a channel or kind that used to carry volume."""
    gone = {}
    for key in ("channel_share", "kind_share"):
        for name, ref in reference.get(key, {}).items():
            now = profile.get(key, {}).get(name, 0.0)
            if ref >= t.min_reference_share and now < ref * t.min_share_ratio:
                gone[f"{key.split('_')[0]}:{name}"] = {"now": now, "reference": ref}
    figures = {"vanished": gone, "min_reference_share": t.min_reference_share, "min_share_ratio": t.min_share_ratio}
    if gone:
        listed = ", ".join(f"{k} ({v['reference']:.1%} -> {v['now']:.1%})" for k, v in gone.items())
        return Gate("vanished", False, figures, f"vanished from the export: {listed}")
    return Gate("vanished", True, figures, "every channel and kind of the reference still carries volume")


def missing_gate(profile: dict, reference: dict, t: Thresholds) -> Gate:
    """Refuse a jump in the share of missing values of any column."""
    jumps = {}
    for col, now in profile.get("missing_share", {}).items():
        ref = reference.get("missing_share", {}).get(col)
        if ref is not None and now - ref > t.max_missing_increase:
            jumps[col] = {"now": now, "reference": ref}
    figures = {"jumps": jumps, "max_missing_increase": t.max_missing_increase}
    if jumps:
        listed = ", ".join(f"{k} {v['reference']:.1%} -> {v['now']:.1%}" for k, v in jumps.items())
        return Gate("missing", False, figures, f"missing values jumped: {listed}")
    return Gate("missing", True, figures, "missing-value shares within the reference's")


def data_gates(profile: dict, reference: dict | None, t: Thresholds) -> list[Gate]:
    """Every data gate, in order (freshness first: it needs no reference)."""
    gates = [freshness_gate(profile, t)]
    if reference is None:
        note = "no reference profile on the champion (first run, or trained outside engage retrain)"
        return gates + [Gate(name, True, {"reference": None}, note) for name in ("volume", "vanished", "missing")]
    return [*gates, volume_gate(profile, reference, t), vanished_gate(profile, reference, t),
            missing_gate(profile, reference, t)]
