"""The ladders family: store ladder, social ladder, in-market stage and the high-engagement-potential flag.

Ladders are ordinal rungs (0-3) a customer climbs with deeper commitment; the potential flag marks
recently very active customers, by the training population's quantile, worth personal treatment.
"""

from __future__ import annotations

import numpy as np

from features.builders.activity import active_counts, exit_counts
from features.builders.base import FeatureBuilder
from features.builders.events import EventArrays
from features.builders.moments import cart_since_purchase, moment_counts, product_revisits
from features.builders.vocab_codes import C, K, T

# Window index of "all time" in the cumulative window counts (7d, 30d, 90d, all).
ALL = 3


class LadderBuilder(FeatureBuilder):
    """Store ladder, social ladder, in-market stage and the high-engagement-potential flag.

    Parameters
    ----------
    committed_min : social interactions (likes, comments, attendances, survey answers) that make a
        customer *committed* on the social ladder.
    promoter_sentiment : review/comment sentiment from which the customer counts as a promoter.
    potential_quantile : customers at or above this quantile of recent (90-day) active touches in the
        training population, not cancelled and past the first ladder rung, get the potential flag.
    """

    family = "ladders"
    seed_idea = "ladders and segments (store / social ladder, in-market stage, high potential)"
    int_columns = frozenset({"store_ladder", "social_ladder", "in_market_stage", "high_engagement_potential"})

    def __init__(self, committed_min: int = 3, promoter_sentiment: float = 0.5, potential_quantile: float = 0.8):
        self.committed_min = committed_min
        self.promoter_sentiment = promoter_sentiment
        self.potential_quantile = potential_quantile

    def describe(self) -> list[tuple[str, str]]:
        return [
            (
                "store_ladder",
                "0 visitor, 1 interested (searched/viewed products or content), 2 almost buyer "
                "(cart add or repeated product views), 3 buyer (purchased)",
            ),
            (
                "social_ladder",
                "0 visitor, 1 engaged (any social/survey/event interaction), 2 committed "
                f"(>= {self.committed_min} such interactions, or a comment/review/attendance), 3 promoter "
                "(shared, or a positive review/comment)",
            ),
            (
                "in_market_stage",
                "last 30 days: 0 none, 1 interested (know/go/do signals), 2 deliberating "
                "(product views, searches, filters), 3 evaluating (cart add since last purchase, revisits, "
                "price pages)",
            ),
            (
                "high_engagement_potential",
                "1 = recent activity in the training population's top "
                f"{1 - self.potential_quantile:.0%}, past the first ladder rung and not cancelled: "
                "worth personal treatment in the CRM",
            ),
        ]

    def _ladders(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ik = ev.kind_counts()[:, 0, :, :]
        mc = moment_counts(ev)
        rv = product_revisits(ev)
        store = np.zeros(ev.n, dtype=np.int64)
        interested = (
            ik[:, K["product_view"], ALL] + ik[:, K["search"], ALL] + ik[:, K["filter"], ALL] + mc[:, :, ALL].sum(1)
        ) > 0
        store[interested] = 1
        store[(ik[:, K["add_to_cart"], ALL] > 0) | (rv[:, ALL] > 0)] = 2
        store[ik[:, K["purchase"], ALL] > 0] = 3
        social_n = (
            ik[:, K["social_like"], ALL]
            + ik[:, K["social_comment"], ALL]
            + ik[:, K["social_share"], ALL]
            + ik[:, K["review"], ALL]
            + ik[:, K["survey_response"], ALL]
            + ik[:, K["event_attendance"], ALL]
        )
        deep = ik[:, K["social_comment"], ALL] + ik[:, K["review"], ALL] + ik[:, K["event_attendance"], ALL]
        social = np.zeros(ev.n, dtype=np.int64)
        social[(social_n > 0) | (ev.active_channel_counts()[:, C["social"], ALL] > 0)] = 1
        social[(social_n >= self.committed_min) | (deep > 0)] = 2
        s = ev.numeric("sentiment")
        if s is not None:
            pos = ((ev.kind == K["review"]) | (ev.kind == K["social_comment"])) & (s >= self.promoter_sentiment)
            promo = ev.bincount(pos)
        else:
            promo = np.zeros(ev.n)
        social[(ik[:, K["social_share"], ALL] > 0) | (promo > 0)] = 3
        stage = np.zeros(ev.n, dtype=np.int64)
        stage[(mc[:, 0, 1] + mc[:, 1, 1] + mc[:, 2, 1]) > 0] = 1
        stage[(ik[:, K["product_view"], 1] + ik[:, K["search"], 1] + ik[:, K["filter"], 1]) > 0] = 2
        cart = cart_since_purchase(ev)
        # Cart adds since the last purchase only count as evaluating when recent.
        recent_cart = np.minimum(cart, ik[:, K["add_to_cart"], 1])
        stage[(recent_cart > 0) | (rv[:, 1] > 0) | (self._price_views_30d(ev) > 0)] = 3
        return store, social, stage

    @staticmethod
    def _price_views_30d(ev: EventArrays) -> np.ndarray:
        return ev.bincount((ev.topic == T["price"]) & ev.inbound & (ev.window_bucket() <= 1))

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        return {"a90": active_counts(ev)[:, 2]}

    def _fit_from(self, stats: dict[str, np.ndarray]) -> None:
        a = stats["a90"][stats["a90"] > 0]
        self.potential_threshold_ = float(np.quantile(a, self.potential_quantile)) if a.size else 1.0

    def _block(self, ev: EventArrays) -> np.ndarray:
        store, social, stage = self._ladders(ev)
        a90 = active_counts(ev)[:, 2]
        _, cancel = exit_counts(ev)
        hep = (a90 >= max(self.potential_threshold_, 1.0)) & (cancel == 0) & ((store >= 1) | (social >= 1))
        return np.column_stack([store, social, stage, hep]).astype(np.float64, copy=False)
