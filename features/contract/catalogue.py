"""The action catalogue: which (channel, offer) outreach actions exist and what each costs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from features.contract.schema import CONSENT_COLUMNS

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
    return catalogue_from_dict(yaml.safe_load(text))
