"""The service and social family: service contacts by topic, surveys, events, social actions and sentiment.

Rates (survey answers, event attendance) and means (satisfaction, sentiment) are smoothed toward the
training population's, so customers with little history are not scored on one or two touches.
"""

from __future__ import annotations

import numpy as np

from features.builders.base import FeatureBuilder, safe_div, smoothed_rate
from features.builders.events import EventArrays, compiled
from features.builders.vocab_codes import K, T

if compiled is not None:  # compiled with the shared kernel (at import), used when the block asks for it
    from features.builders.kernel_service import service_pass


class ServiceSocialBuilder(FeatureBuilder):
    """Service contacts by topic, surveys, events, social actions, sentiment and social proof.

    Parameters
    ----------
    prior_strength : pseudo-observations of the population rate/mean used to smooth rates and means.
    promoter_sentiment : sentiment (-1..1) from which a review or comment counts as a recommendation.
    """

    family = "service_social"
    seed_idea = "service, survey, event and social signals (emotion index, social proof)"

    def __init__(self, prior_strength: float = 2.0, promoter_sentiment: float = 0.5):
        self.prior_strength = prior_strength
        self.promoter_sentiment = promoter_sentiment

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("service_contacts", "service contacts ever"),
            ("service_contacts_90d", "service contacts in the last 90 days"),
            ("service_advice_value", "service contacts about advice or value-add topics (positive)"),
            ("service_help", "service contacts about help topics (neutral)"),
            ("service_fault_dissat", "service contacts about faults or dissatisfaction, plus complaints"),
            ("service_fault_dissat_90d", "fault/dissatisfaction contacts and complaints, last 90 days"),
            (
                "service_negative_share",
                "share of service contacts and complaints that are negative (0 if none)",
            ),
            ("complaints", "complaints ever"),
            ("complaints_90d", "complaints in the last 90 days"),
            ("surveys_sent", "surveys sent to the customer"),
            ("survey_responses", "surveys answered"),
            ("survey_response_rate", "responses / surveys sent, smoothed toward the population rate"),
            ("satisfaction_mean", "mean sentiment of survey responses, smoothed toward the population mean"),
            ("event_invites", "event invitations received"),
            ("events_attended", "events attended"),
            ("event_attendance_rate", "attendances / invitations, smoothed toward the population rate"),
            ("social_likes", "social likes"),
            ("social_comments", "social comments"),
            ("social_shares", "social shares"),
            ("reviews", "reviews written"),
            ("recommendations", f"reviews and comments with sentiment >= {self.promoter_sentiment:g}"),
            (
                "social_proof",
                "shares + reviews + recommendations: how much the customer vouches for the brand",
            ),
            (
                "sentiment_mean",
                "emotion index: mean sentiment of all touches with one, smoothed toward the population mean",
            ),
            ("sentiment_mean_90d", "mean sentiment in the last 90 days, smoothed toward the population mean"),
            ("sentiment_negative_90d", "touches with sentiment < -0.3 in the last 90 days"),
        ]

    def _compiled(self, ev: EventArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Service topics (n, 5, 2), sentiment counts (n, 5) and sums (n, 3) from the compiled pass (memoised)."""

        def _run():
            return service_pass(ev, ev.numeric("sentiment"), K["service_contact"], K["survey_response"], K["review"],
                                K["social_comment"], -0.3, float(self.promoter_sentiment))

        return ev.memo(f"service_pass:{id(self)}", _run)

    def _sent(self, ev: EventArrays):
        s = ev.numeric("sentiment")
        if s is not None and ev.kernel and compiled is not None:
            _, n, v = self._compiled(ev)
            return n[:, 0], v[:, 0], n[:, 1], v[:, 1], n[:, 2], (n[:, 3], v[:, 2]), n[:, 4]
        if s is None:
            z = np.zeros(ev.n)
            return z, z, z, z, z, (z, z), z
        ok = ~np.isnan(s)
        idx = np.flatnonzero(ok)
        c, v = ev.cust[idx], s[idx]
        recent = ev.window_bucket()[idx] <= 2
        n_all = np.bincount(c, minlength=ev.n)
        s_all = np.bincount(c, weights=v, minlength=ev.n)
        r = np.flatnonzero(recent)
        n_90 = np.bincount(c[r], minlength=ev.n)
        s_90 = np.bincount(c[r], weights=v[r], minlength=ev.n)
        neg_90 = np.bincount(c.compress(recent & (v < -0.3)), minlength=ev.n)
        k = ev.kind[idx]
        sv = np.flatnonzero(k == K["survey_response"])
        n_sv = np.bincount(c[sv], minlength=ev.n)
        s_sv = np.bincount(c[sv], weights=v[sv], minlength=ev.n)
        rec = ((k == K["review"]) | (k == K["social_comment"])) & (v >= self.promoter_sentiment)
        return n_all, s_all, n_90, s_90, neg_90, (n_sv, s_sv), np.bincount(c.compress(rec), minlength=ev.n)

    def _fit_stats(self, ev: EventArrays) -> dict[str, np.ndarray]:
        n_all, s_all, _, _, _, (n_sv, s_sv), _ = self._sent(ev)
        return {
            "sent": ev.outbound_kind("survey_sent") + ev.inbound_kind("survey_sent"),
            "resp": ev.inbound_kind("survey_response"),
            "inv": ev.outbound_kind("event_invite") + ev.inbound_kind("event_invite"),
            "att": ev.inbound_kind("event_attendance"),
            "n_all": n_all,
            "s_all": s_all,
            "n_sv": n_sv,
            "s_sv": s_sv,
        }

    def _fit_from(self, st: dict[str, np.ndarray]) -> None:
        self.survey_rate_ = float(min(1.0, safe_div(st["resp"].sum(), st["sent"].sum())))
        self.attendance_rate_ = float(min(1.0, safe_div(st["att"].sum(), st["inv"].sum())))
        self.sentiment_mean_ = float(safe_div(st["s_all"].sum(), st["n_all"].sum()))
        self.satisfaction_mean_ = float(safe_div(st["s_sv"].sum(), st["n_sv"].sum(), self.sentiment_mean_))

    def _block(self, ev: EventArrays) -> np.ndarray:
        a = self.prior_strength
        tc = self._topics(ev)
        tall = tc.sum(2)
        n_svc, n_svc90 = ev.inbound_kind("service_contact"), ev.inbound_kind("service_contact", 2)
        compl, compl90 = ev.inbound_kind("complaint"), ev.inbound_kind("complaint", 2)
        posv = tall[:, T["advice"]] + tall[:, T["value_add"]]
        neg = tall[:, T["fault"]] + tall[:, T["dissatisfaction"]] + compl
        neg90 = tc[:, T["fault"], 1] + tc[:, T["dissatisfaction"], 1] + compl90
        sent = ev.outbound_kind("survey_sent") + ev.inbound_kind("survey_sent")
        resp = ev.inbound_kind("survey_response")
        inv = ev.outbound_kind("event_invite") + ev.inbound_kind("event_invite")
        att = ev.inbound_kind("event_attendance")
        n_all, s_all, n_90, s_90, neg_s90, (n_sv, s_sv), rec = self._sent(ev)
        shares, reviews = ev.inbound_kind("social_share"), ev.inbound_kind("review")
        return np.column_stack(
            [
                n_svc,
                n_svc90,
                posv,
                tall[:, T["help"]],
                neg,
                neg90,
                safe_div(neg, n_svc + compl),
                compl,
                compl90,
                sent,
                resp,
                smoothed_rate(resp, np.maximum(sent, resp), self.survey_rate_, a),
                (s_sv + a * self.satisfaction_mean_) / (n_sv + a),
                inv,
                att,
                smoothed_rate(att, np.maximum(inv, att), self.attendance_rate_, a),
                ev.inbound_kind("social_like"),
                ev.inbound_kind("social_comment"),
                shares,
                reviews,
                rec,
                shares + reviews + rec,
                (s_all + a * self.sentiment_mean_) / (n_all + a),
                (s_90 + a * self.sentiment_mean_) / (n_90 + a),
                neg_s90,
            ]
        ).astype(np.float64, copy=False)

    def _topics(self, ev: EventArrays) -> np.ndarray:
        """Service contacts by (customer, service topic, older / last 90 days): shape (n, 5, 2)."""
        if ev.kernel and compiled is not None:
            return self._compiled(ev)[0]
        idx = np.flatnonzero(ev.kind_dir == K["service_contact"])
        topic = ev.topic[idx]
        keep = np.flatnonzero((topic >= 0) & (topic < 5))
        idx, topic = idx[keep], topic[keep]
        key = ev.cust[idx].astype(np.intp) * 10
        key += topic * np.int8(2)
        key += ev.window_bucket()[idx] <= 2
        return np.bincount(key, minlength=ev.n * 10).reshape(ev.n, 5, 2)
