"""The action catalogue: which (channel, offer) outreach actions exist and what each costs.

The packaged catalogue (``actions.yaml``) or a user's file describes the actions a company may take; a
campaign export whose log holds other actions (e.g. its own offer names) gives its catalogue itself
(:func:`catalogue_from_log`): the logged channel x offer pairs, plus no contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import CONSENT_COLUMNS, OUTREACH_CHANNELS
from features.contract.settings_file import parse_yaml

NO_CONTACT = "no_contact"


@dataclass(frozen=True)
class Action:
    """One outreach action; ``channel`` and ``offer`` are ``None`` for no contact."""

    id: str
    channel: str | None
    offer: str | None
    cost: float


@dataclass(frozen=True)
class Catalogue:
    """Channels, offers and the allowed pairs; ``actions[0]`` is always no contact."""

    channels: dict
    offers: dict
    allowed: dict
    actions: tuple[Action, ...]

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.actions]

    def action(self, action_id: str) -> Action:
        for a in self.actions:
            if a.id == action_id:
                return a
        raise KeyError(f"unknown action {action_id!r}; known: {', '.join(self.ids)}")


def action_id(channel: str | None, offer: str | None) -> str:
    """The id of a (channel, offer) action, e.g. ``email:discount_10``; ``no_contact`` for no channel."""
    return NO_CONTACT if channel is None else f"{channel}:{offer}"


def catalogue_from_dict(spec: dict) -> Catalogue:
    """Build and check a catalogue from its YAML structure."""
    for key in ("channels", "offers", "allowed"):
        if key not in spec:
            raise ValueError(f"action catalogue: missing section {key!r}")
    channels, offers, allowed = spec["channels"], spec["offers"], spec["allowed"]
    for ch, cfg in channels.items():
        if ch not in CONSENT_COLUMNS:
            raise ValueError(f"action catalogue: channel {ch!r} is not an outreach channel {sorted(CONSENT_COLUMNS)}")
        if float(cfg.get("cost", 0)) < 0:
            raise ValueError(f"action catalogue: channel {ch!r} has a negative cost")
    actions = [Action(NO_CONTACT, None, None, 0.0)]
    for ch, offer_list in allowed.items():
        if ch not in channels:
            raise ValueError(f"action catalogue: allowed lists unknown channel {ch!r}")
        for off in offer_list:
            if off not in offers:
                raise ValueError(f"action catalogue: channel {ch!r} allows unknown offer {off!r}")
            cost = float(channels[ch].get("cost", 0.0)) + float(offers[off].get("cost", 0.0))
            actions.append(Action(action_id(ch, off), ch, off, cost))
    return Catalogue(channels=channels, offers=offers, allowed=allowed, actions=tuple(actions))


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load an action catalogue from YAML; ``None`` loads the packaged default."""
    source = resources.files("features.contract").joinpath("actions.yaml") if path is None else Path(path)
    text = source.read_text()
    return catalogue_from_dict(parse_yaml(text, source))


def logged_pairs(outreach: pd.DataFrame) -> pd.DataFrame:
    """The (channel, offer) pair of every contact the log records (holdout rows left out; an empty offer is
    ``none``, a value contact), with the row's ``cost`` when the log has that column."""
    hold = outreach["holdout"].fillna(False).to_numpy(bool) if "holdout" in outreach else np.zeros(len(outreach), bool)
    rows = outreach.loc[~hold]
    offer = rows["offer"].astype(object).where(rows["offer"].notna(), "none").astype(str)
    cost = pd.to_numeric(rows["cost"], errors="coerce") if "cost" in rows else pd.Series(np.nan, index=rows.index)
    return pd.DataFrame({"channel": rows["channel"].astype(str).to_numpy(), "offer": offer.to_numpy(),
                         "cost": cost.to_numpy(dtype=float)})  # fmt: skip


def catalogue_from_log(outreach: pd.DataFrame) -> Catalogue:
    """The catalogue of the actions the log took: every logged channel x offer pair, plus no contact.

    An action's cost is the median of the log's ``cost`` column over its rows when the log has one, else 0
    (the caller warns: the objective then counts contacts as free).
    """
    pairs = logged_pairs(outreach)
    if pairs.empty:
        raise ValueError("outreach: no contact rows (only holdouts), so the log names no action")
    bad = sorted(set(pairs["channel"]) - set(OUTREACH_CHANNELS))
    if bad:
        raise ValueError(f"outreach.channel: {bad} are not outreach channels {list(OUTREACH_CHANNELS)}")
    cost = pairs.groupby(["channel", "offer"])["cost"].median().fillna(0.0)
    if (cost < 0).any():
        raise ValueError(f"outreach.cost: negative costs for {cost[cost < 0].index.tolist()[:5]}")
    channels = [c for c in OUTREACH_CHANNELS if c in set(pairs["channel"])]
    allowed = {c: sorted(cost.loc[c].index) for c in channels}
    offers = sorted({o for offs in allowed.values() for o in offs})
    actions = [Action(NO_CONTACT, None, None, 0.0)] + [
        Action(action_id(c, o), c, o, float(cost.loc[(c, o)])) for c in channels for o in allowed[c]
    ]
    return Catalogue(
        channels={c: {"cost": 0.0, "consent": CONSENT_COLUMNS[c]} for c in channels},
        offers={o: {"cost": 0.0, "kind": "logged"} for o in offers},
        allowed=allowed,
        actions=tuple(actions),
    )
