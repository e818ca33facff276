"""Train and evaluate the next-best-action policy from the outreach log (and the truth, when simulated).

Training rows: for every logged campaign date ``s`` (the day of a campaign's first send) whose outcome window
``[s, s + horizon)`` ends by the evaluation cutoff, the features of each logged customer at cutoff ``s``
(:func:`features.builders.pipeline.build_features` semantics: only events before ``s``), the logged action (a
holdout row is ``no_contact``), its propensity, and the churn label within the horizon after ``s``
(:func:`features.labels.make_labels`). Customers are split once: a held-out share never used for fitting
is where the off-policy estimates are computed.

Evaluation at the evaluation cutoff ``T``: decisions for every customer under the configured consent, caps
and limits; off-policy IPS / SNIPS / DR estimates on the held-out log; and on simulated data the truth
check: true value of the learned policy vs the oracle (best eligible assignment under the same
constraints) vs baselines, constraint violations, and whether the DR interval holds the true value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from features.contract.catalogue import NO_CONTACT, Catalogue, action_id
from features.contract.cutoffs import evaluation_cutoff
from features.contract.schema import EXIT_KINDS, KINDS, OUTREACH_CHANNELS, PASSIVE_KINDS, Tables
from features.decision.assignment import assign, limit_matrix, limit_violations
from features.decision.config import PolicyConfig
from features.decision.eligibility import contact_history, eligibility
from features.decision.nba import NextBestAction
from features.decision.ope import by_group, dr_difference, dr_pseudo_outcomes, evaluate, policy_matrix
from features.decision.rule import total_value
from features.models.uplift import UpliftModel
from features.models.value import ValueModel
from training.report import write_json

# The outcome counts only the customer's own activity: a reaction to our outreach (an open, a click, a
# redemption) is not retention, or every opened message would "retain" its reader by construction.
OUTREACH_REACTIONS: frozenset[str] = frozenset({"message_open", "message_click", "offer_redeemed"})
ORGANIC_ACTIVITY: tuple[str, ...] = tuple(
    k for k in KINDS if k not in PASSIVE_KINDS and k not in EXIT_KINDS and k not in OUTREACH_REACTIONS
)


@dataclass(frozen=True)
class PolicyTrainConfig:
    """How the policy is trained and evaluated (the decision rule's own settings are in PolicyConfig).

    ``max_campaigns``: the latest campaigns used for training (``None``, the default = every campaign with a
    complete outcome window). Effects are a tenth of a point to a few points of churn probability, so every
    logged decision helps: on two-year simulated logs all ~32 campaigns instead of the latest 16 raised the
    captured uplift ratio from 0.22 to 0.38 (20,000 customers) and from 0.31 to 0.35 (50,000), for about
    twice the training time. A number keeps only the latest campaigns (a base that has changed).
    ``final``: the effect model's final stage (:class:`features.models.uplift.UpliftModel`): ``reach`` (default),
    ``dr``, ``plugin``, or ``auto`` = ``reach`` and ``plugin`` both fitted, the better on validation kept.
    ``threshold_z``: the contact threshold maximises ``DR gain - z se`` on validation rows (0 = the point
    estimate; see :func:`select_threshold`). ``refit``: refit the chosen model on fit + validation rows.
    ``effect_ridge``: ridge penalty of the ``reach`` final stage's shared slopes (per logged row).
    ``effect_features``: how many features the ``reach`` stage's slopes use (``"auto"``: screened and chosen on
    held-out pseudo-outcomes; an integer; ``None``: all). See :class:`features.models.uplift.UpliftModel`.
    """

    horizon_days: int = 90
    max_campaigns: int | None = None
    holdout_share: float = 0.3
    validation_share: float = 0.25
    final: str = "reach"
    outcome_estimators: int = 300
    effect_estimators: int = 150
    seed: int = 0
    n_boot: int = 300
    refit: bool = True
    threshold_z: float = 0.0
    effect_ridge: float = 0.3
    effect_features: int | str | None = "auto"


def _log(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


# --------------------------------------------------------------------------------------------- data
def logged_actions(outreach: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """The catalogue action id of every outreach row (holdout rows are ``no_contact``)."""
    hold = outreach["holdout"].fillna(False).to_numpy(bool) if "holdout" in outreach else np.zeros(len(outreach), bool)
    ids = np.array(
        [
            action_id(str(c), str(o)) if not h else NO_CONTACT
            for c, o, h in zip(outreach["channel"].astype(object), outreach["offer"], hold, strict=True)
        ],
        dtype=object,
    )
    known = set(catalogue.ids)
    bad = ~np.isin(ids, list(known))
    if bad.any():
        ex = pd.unique(ids[bad])[:5].tolist()
        raise ValueError(
            f"outreach: {int(bad.sum())} rows have a channel/offer not in the action catalogue "
            f"(e.g. {ex}); give a catalogue that lists them"
        )
    return ids


def campaign_cutoffs(
    outreach: pd.DataFrame, *, horizon_days: int, until: pd.Timestamp, max_campaigns: int | None = None
) -> list[pd.Timestamp]:
    """Campaign decision dates (day of first send) whose outcome window ends by ``until``; latest last."""
    if "campaign_id" in outreach and outreach["campaign_id"].notna().all():
        starts = outreach.groupby(outreach["campaign_id"].astype(str))["ts"].min()
    else:
        starts = pd.Series(outreach["ts"].dt.floor("D").unique())
    days = sorted({ts.floor("D") for ts in starts})
    days = [d for d in days if d + pd.Timedelta(days=horizon_days) <= until]
    return days[-max_campaigns:] if max_campaigns else days


def spend_per_day(tables: Tables, cutoff: pd.Timestamp, horizon_days: int) -> pd.Series:
    """Purchase amount per day in ``[cutoff, cutoff + horizon)`` per customer (0 without purchases)."""
    tp = tables.touchpoints
    end = cutoff + pd.Timedelta(days=horizon_days)
    m = (tp["kind"] == "purchase") & (tp["ts"] >= cutoff) & (tp["ts"] < end)
    amount = tp.loc[m, "amount"].fillna(0.0) if "amount" in tp else pd.Series(0.0, index=tp.index[m])
    s = amount.groupby(tp.loc[m, "customer_id"].astype(str).to_numpy()).sum()
    return (s / horizon_days).reindex(tables.customers["customer_id"].astype(str)).fillna(0.0)


def training_rows(
    tables: Tables,
    cutoffs: list[pd.Timestamp],
    catalogue: Catalogue,
    *,
    horizon_days: int,
    pipeline=None,
    labels_fn: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and outcomes of every logged decision at the given campaign cutoffs.

    Returns ``(X, rows)``: ``X`` the features (one row per logged decision), ``rows`` with ``customer_id,
    cutoff, action, propensity, label, spend_per_day``. Decisions of customers not active before the
    cutoff (no label) are dropped.
    """
    if labels_fn is None:
        from features.labels import make_labels

        def labels_fn(tables, cutoffs, *, horizon_days):
            return make_labels(tables, cutoffs, horizon_days=horizon_days, activity_kinds=ORGANIC_ACTIVITY)

    if tables.outreach is None or len(tables.outreach) == 0:
        raise ValueError("outreach: the table is missing or empty; the policy learns from logged outreach")
    data = tables.without_truth()
    out = data.outreach
    actions = logged_actions(out, catalogue)
    prop = out["propensity"].to_numpy(float) if "propensity" in out else np.full(len(out), np.nan)
    if np.isnan(prop).any():
        # Imported logs may lack propensities: use each campaign's empirical action frequencies.
        camp = out["campaign_id"].astype(str).to_numpy() if "campaign_id" in out else np.zeros(len(out))
        freq = pd.Series(1.0, index=range(len(out))).groupby([camp, actions]).transform("sum")
        size = pd.Series(1.0, index=range(len(out))).groupby(camp).transform("sum")
        prop = np.where(np.isnan(prop), (freq / size).to_numpy(), prop)
    labels = labels_fn(data, cutoffs, horizon_days=horizon_days)
    labels = labels.assign(
        customer_id=labels["customer_id"].astype(str), cutoff=pd.to_datetime(labels["cutoff"], utc=True)
    )
    day = out["ts"].dt.floor("D")
    Xs, metas = [], []
    for s in cutoffs:
        t0 = time.time()
        sel = ((day >= s) & (day < s + pd.Timedelta(days=1))).to_numpy()
        if not sel.any():
            continue
        F = _features(data, s, pipeline)
        lab = labels[labels["cutoff"] == s].set_index("customer_id")["label"]
        cid = out.loc[sel, "customer_id"].astype(str).to_numpy()
        keep = np.isin(cid, lab.index.to_numpy())
        cid = cid[keep]
        spend = spend_per_day(data, s, horizon_days)
        meta = pd.DataFrame(
            {
                "customer_id": cid,
                "cutoff": s,
                "action": actions[sel][keep],
                "propensity": prop[sel][keep],
                "label": lab.reindex(cid).to_numpy().astype(int),
                "spend_per_day": spend.reindex(cid).to_numpy(),
            }
        )
        Xs.append(F.loc[cid].reset_index(drop=True))
        metas.append(meta)
        _log(progress, f"  campaign {s.date()}: {len(meta):,} logged decisions ({time.time() - t0:.1f}s)")
    if not Xs:
        raise ValueError(f"outreach: no logged decisions at the campaign cutoffs {[str(c.date()) for c in cutoffs]}")
    return pd.concat(Xs, ignore_index=True), pd.concat(metas, ignore_index=True)


def _features(tables: Tables, cutoff: pd.Timestamp, pipeline) -> pd.DataFrame:
    from features.builders.pipeline import build_features

    F = build_features(tables, cutoff, pipeline)
    F.index = F.index.astype(str)
    return F


def split_customers(customer_ids: pd.Series, share: float, rng: np.random.Generator) -> np.ndarray:
    """Held-out customer ids (a random ``share`` of all customers)."""
    ids = np.asarray(pd.unique(customer_ids.astype(str)))
    return ids[rng.random(len(ids)) < share]


# --------------------------------------------------------------------------------------------- training
def fit_policy(
    X: pd.DataFrame,
    rows: pd.DataFrame,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
) -> NextBestAction:
    """Fit the effect model (DR-learner) and the value model on logged rows."""
    if train.final not in ("reach", "dr", "plugin"):
        raise ValueError(f"policy training: final must be 'reach', 'dr' or 'plugin' here, got {train.final!r}")
    uplift = UpliftModel(
        catalogue.ids,
        outcome_estimators=train.outcome_estimators,
        effect_estimators=train.effect_estimators,
        final=train.final,
        effect_ridge=train.effect_ridge,
        effect_features=train.effect_features,
        random_state=train.seed,
    )
    uplift.fit(
        X,
        rows["action"].to_numpy(),
        rows["propensity"].to_numpy(),
        rows["label"].to_numpy(),
        groups=rows["customer_id"].to_numpy(),
    )
    stay = rows["label"].to_numpy() == 0
    value = ValueModel(margin=config.value.margin, horizon_days=config.value.horizon_days, random_state=train.seed).fit(
        X[stay], rows["spend_per_day"].to_numpy()[stay]
    )
    # The defense targets' "valuable" bar: the configured quantile of the training population's value.
    min_value = config.defense.min_value
    if min_value is None and len(X):
        min_value = float(np.nanquantile(value.predict(X), config.defense.min_value_quantile))
    return NextBestAction(uplift, value, catalogue, config, defense_min_value=min_value)


def _dr_scores(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """Model estimates and DR pseudo-outcomes (reward ``-value x churned - cost``) of logged rows."""
    cat = model.catalogue
    pos = {a: k for k, a in enumerate(cat.ids)}
    a_log = rows["action"].map(pos).to_numpy(int)
    est = model.expected_values(X)
    cost = np.array([a.cost for a in cat.actions])
    reward = -est["value"] * rows["label"].to_numpy(float) - cost[a_log]
    q = -est["value"][:, None] * est["p"] - cost[None, :]
    return est, dr_pseudo_outcomes(a_log, rows["propensity"].to_numpy(float), reward, q)


def select_threshold(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame, z: float = 0.5) -> tuple[float, float]:
    """The contact threshold on estimated incremental value chosen on validation rows.

    For each candidate threshold, the DR-estimated gain over no contact per logged decision of giving every
    row whose best estimated incremental value exceeds it that action, and its standard error; the threshold
    with the highest ``mean - z se`` wins. ``z = 0.5`` is a mild guard against a threshold that looks good by
    luck; a one-sided 95 % bound (``z = 1.645``) proved far too strict: with effects of a few percentage
    points on a fifth of the customers it rejected every threshold and the policy contacted nobody. When no
    threshold's bound is above zero the threshold rises above every estimate (nobody is contacted).
    Returns ``(threshold, guarded gain per decision)``.
    """
    est, G = _dr_scores(model, X, rows)
    ev = est["ev"].copy()
    ev[:, 0] = -np.inf
    best = ev.argmax(axis=1)
    best_ev = ev[np.arange(len(best)), best]
    gain = G[np.arange(len(best)), best] - G[:, 0]
    pos = best_ev[best_ev > 0]
    if pos.size == 0:
        return float("inf"), 0.0
    grid = np.unique(np.concatenate([[0.0], np.quantile(pos, np.linspace(0.0, 0.995, 40))]))
    contrib = np.where(best_ev[:, None] > grid[None, :], gain[:, None], 0.0)
    lcb = contrib.mean(axis=0) - z * contrib.std(axis=0) / np.sqrt(len(gain))
    k = int(np.argmax(lcb))
    if lcb[k] <= 0:
        return float(pos.max()) + 1.0, 0.0
    return float(grid[k]), float(lcb[k])


def uplift_curve(model: NextBestAction, X: pd.DataFrame, rows: pd.DataFrame, n_points: int = 21) -> dict:
    """Qini-style uplift curve on logged rows: DR gain over no contact when the top share is treated.

    Rows are ranked by their best estimated incremental value; treating the top ``share`` with their best
    estimated action gives a DR-estimated gain per logged decision (``gain``). ``random`` is the same share
    treated with a random contact action, ranked at random (the straight line a useless model draws).
    """
    est, G = _dr_scores(model, X, rows)
    ev = est["ev"].copy()
    ev[:, 0] = -np.inf
    best = ev.argmax(axis=1)
    n = len(best)
    order = np.argsort(-ev[np.arange(n), best], kind="stable")
    gain_row = (G[np.arange(n), best] - G[:, 0])[order]
    avg_contact = (G[:, 1:].mean(axis=1) - G[:, 0]).mean() if G.shape[1] > 1 else 0.0
    shares = np.linspace(0.0, 1.0, n_points)
    cum = np.concatenate([[0.0], np.cumsum(gain_row)])
    k = np.round(shares * n).astype(int)
    return {
        "share": shares.tolist(),
        "gain": (cum[k] / max(n, 1)).tolist(),
        "random": (shares * avg_contact).tolist(),
        "rows": n,
    }


# --------------------------------------------------------------------------------------------- baselines
def _choice_index(decisions: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    pos = {a: k for k, a in enumerate(catalogue.ids)}
    return decisions["nba_action"].map(pos).to_numpy(int)


def most_opened_channel(F: pd.DataFrame, eligible_channel: np.ndarray) -> np.ndarray:
    """Per customer, the index (into OUTREACH_CHANNELS) of the eligible channel with the highest open rate."""
    rates = np.column_stack(
        [F.get(f"chan_{c}_open_rate", pd.Series(0.0, index=F.index)).to_numpy(float) for c in OUTREACH_CHANNELS]
    )
    rates = np.where(eligible_channel, np.nan_to_num(rates, nan=0.0), -np.inf)
    return rates.argmax(axis=1)


def baseline_choices(
    F: pd.DataFrame,
    eligible: np.ndarray,
    catalogue: Catalogue,
    churn: np.ndarray,
    n_contacts: int,
    A: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    ev_single: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Baseline policies at the learned policy's contact volume, within the same eligibility and limits.

    ``random``: ``n_contacts`` random reachable customers, a random eligible action each.
    ``top_churn_most_opened``: the ``n_contacts`` highest churn scores, on their most-opened eligible channel
    with a value contact (offer ``none``). ``best_single_action``: one action for every eligible customer;
    the action maximising ``ev_single`` summed (hindsight-best when given the truth).
    """
    n, K = eligible.shape
    ids = catalogue.ids
    reachable = eligible[:, 1:].any(axis=1)
    out: dict[str, np.ndarray] = {}

    def within_limits(order: np.ndarray, action: np.ndarray) -> np.ndarray:
        choice = np.zeros(n, dtype=int)
        remaining = b.copy()
        taken = 0
        for i in order:
            if taken >= n_contacts:
                break
            a = action[i]
            if a == 0 or (len(b) and np.any(A[:, a] > remaining + 1e-9)):
                continue
            choice[i] = a
            taken += 1
            if len(b):
                remaining = remaining - A[:, a]
        return choice

    u = rng.random((n, K)) * eligible
    u[:, 0] = 0
    rand_action = u.argmax(axis=1)
    out["random"] = within_limits(rng.permutation(np.nonzero(reachable)[0]), rand_action)

    chan_elig = np.column_stack(
        [
            eligible[:, [k for k, a in enumerate(catalogue.actions) if a.channel == c]].any(axis=1)
            if any(a.channel == c for a in catalogue.actions)
            else np.zeros(n, bool)
            for c in OUTREACH_CHANNELS
        ]
    )
    best_ch = most_opened_channel(F, chan_elig)
    value_contact = np.array(
        [ids.index(action_id(c, "none")) if action_id(c, "none") in ids else 0 for c in OUTREACH_CHANNELS]
    )
    act = np.where(reachable, value_contact[best_ch], 0)
    order = np.argsort(-np.where(reachable, churn, -np.inf), kind="stable")
    out["top_churn_most_opened"] = within_limits(order[reachable[order]], act)

    if ev_single is not None:
        totals = [np.where(eligible[:, k], ev_single[:, k], 0.0).sum() for k in range(1, K)]
        k_best = 1 + int(np.argmax(totals))
        act = np.where(eligible[:, k_best], k_best, 0)
        out["best_single_action"] = within_limits(rng.permutation(n), act)
        out["best_single_action_id"] = np.array([k_best])
    return out


def constraint_violations(
    choice: np.ndarray,
    customers: pd.DataFrame,
    history: pd.DataFrame | None,
    catalogue: Catalogue,
    config: PolicyConfig,
) -> dict[str, int]:
    """Independent count of decisions breaking consent, caps/fatigue or the global limits."""
    acts = catalogue.actions
    chan = np.array([acts[k].channel or "" for k in choice], dtype=object)
    consent_bad = 0
    for c in OUTREACH_CHANNELS:
        on = chan == c
        if on.any():
            consent_bad += int((on & ~customers[f"consent_{c}"].fillna(False).to_numpy(bool)).sum())
    cap_bad = 0
    if history is not None:
        h = history.reindex(customers["customer_id"].astype(str))
        contacted = choice != 0
        for c in OUTREACH_CHANNELS:
            cap = config.caps.per_channel.get(c)
            if cap is not None:
                cap_bad += int(((chan == c) & (h[f"contacts_{c}"].to_numpy() + 1 > cap)).sum())
        if config.caps.total is not None:
            cap_bad += int((contacted & (h["contacts_total"].to_numpy() + 1 > config.caps.total)).sum())
        if config.caps.min_days_between_contacts is not None:
            cap_bad += int(
                (contacted & (h["days_since_contact"].to_numpy() < config.caps.min_days_between_contacts)).sum()
            )
    A, b, names = limit_matrix(catalogue, config.limits)
    return {"consent": consent_bad, "caps": cap_bad, "limits": len(limit_violations(choice, A, b, names))}


# --------------------------------------------------------------------------------------------- OPE
def offline_estimates(
    model: NextBestAction,
    X: pd.DataFrame,
    rows: pd.DataFrame,
    churn: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
) -> dict:
    """IPS / SNIPS / DR estimates (per logged decision) of the learned policy and baselines on held-out rows.

    Reward of a logged decision: ``-value x churned - cost`` (the incremental value over no contact is the
    difference of two policy values). The target policies decide per logged row with consent as today's
    customers table shows it; round limits and caps are not applied to the log.
    """
    cat = model.catalogue
    K = len(cat.ids)
    pos = {a: k for k, a in enumerate(cat.ids)}
    a_log = rows["action"].map(pos).to_numpy(int)
    p_log = rows["propensity"].to_numpy(float)
    est = model.expected_values(X)
    cost = np.array([a.cost for a in cat.actions])
    value = est["value"]
    reward = -value * rows["label"].to_numpy(float) - cost[a_log]
    q = -value[:, None] * est["p"] - cost[None, :]
    G = dr_pseudo_outcomes(a_log, p_log, reward, q)
    # Eligibility from the logged consent: a channel was consented if the logging policy could use it.
    ev = est["ev"]
    pos_ev = np.where(ev > model.config.min_incremental_value, ev, -np.inf)
    pos_ev[:, 0] = 0.0
    learned = pos_ev.argmax(axis=1)
    policies = {"learned": learned, "no_contact": np.zeros(len(a_log), int)}
    policies["random"] = rng.integers(0, K, len(a_log))
    contacts = int((learned != 0).sum())
    order = np.argsort(-churn, kind="stable")[:contacts]
    tc = np.zeros(len(a_log), int)
    tc[order] = pos.get(action_id("email", "none"), 1)
    policies["top_churn_email"] = tc
    single = [float((G[:, k] - G[:, 0]).mean()) for k in range(1, K)]
    policies["best_single_action"] = np.full(len(a_log), 1 + int(np.argmax(single)))
    out: dict = {"rows": len(a_log), "policies": {}}
    nc_pi = policy_matrix(policies["no_contact"], K)
    for name, choice in policies.items():
        pi = policy_matrix(choice, K)
        res = evaluate(a_log, p_log, reward, pi, q=q, rng=rng, n_boot=n_boot)
        inc = dr_difference(G, pi, nc_pi, rng=rng, n_boot=n_boot)
        out["policies"][name] = {
            **{k: v.as_dict() for k, v in res.items()},
            "dr_incremental": inc.as_dict(),
            "contact_share": float((choice != 0).mean()),
        }
    out["best_single_action"] = cat.ids[int(policies["best_single_action"][0])]
    out["learned_minus_random_dr"] = dr_difference(
        G, policy_matrix(learned, K), policy_matrix(policies["random"], K), rng=rng, n_boot=n_boot
    ).as_dict()
    chans = np.array([a.channel or "none" for a in cat.actions], dtype=object)
    offers = np.array([a.offer or "none" for a in cat.actions], dtype=object)
    out["by_channel"] = by_group(G, learned, chans, rng=rng, n_boot=min(n_boot, 200)).to_dict("records")
    out["by_offer"] = by_group(G, learned, offers, rng=rng, n_boot=min(n_boot, 200)).to_dict("records")
    effect = est["p"][np.arange(len(learned)), learned] - est["p0"]
    out["share_harmed_estimated"] = float(((learned != 0) & (effect > 0)).mean())
    return out


def truth_ev(truth: pd.DataFrame, customers: pd.DataFrame, catalogue: Catalogue) -> np.ndarray:
    """The truth's expected incremental value matrix in catalogue order, rows aligned to ``customers``."""
    cols = [f"ev__{a}" for a in catalogue.ids]
    missing = [c for c in cols if c not in truth.columns]
    if missing:
        raise ValueError(f"truth: missing column(s) {missing[:5]} ({len(truth)} rows)")
    t = truth.assign(customer_id=truth["customer_id"].astype(str)).set_index("customer_id")
    return t.loc[customers["customer_id"].astype(str), cols].to_numpy(float)


def simulated_experiment_check(
    truth: pd.DataFrame,
    customers: pd.DataFrame,
    catalogue: Catalogue,
    eligible: np.ndarray,
    choice: np.ndarray,
    est: dict,
    rng: np.random.Generator,
    n_boot: int,
    no_contact_share: float = 0.2,
) -> dict:
    """Does the DR interval hold the true value? A randomised campaign at the cutoff drawn from the truth.

    Each customer gets no contact with probability ``no_contact_share``, otherwise a uniformly random eligible
    action; churn is drawn from the truth's churn probability under that action; the realised reward is
    ``value x (1 - churned) - cost``. The DR estimate (outcome model = the learned effect and value models)
    of the policy's incremental value per customer is compared with its true value.
    """
    t = truth.assign(customer_id=truth["customer_id"].astype(str)).set_index("customer_id")
    t = t.loc[customers["customer_id"].astype(str)]
    n, K = eligible.shape
    p_true = t[[f"p_churn__{a}" for a in catalogue.ids]].to_numpy(float)
    value = t["value"].to_numpy(float)
    cost = np.array([a.cost for a in catalogue.actions])
    n_contact = eligible[:, 1:].sum(axis=1)
    u = rng.random((n, K)) * eligible
    u[:, 0] = -1
    rand = u.argmax(axis=1)
    contact = (rng.random(n) >= no_contact_share) & (n_contact > 0)
    a_log = np.where(contact, rand, 0)
    p_log = np.where(
        a_log == 0,
        np.where(n_contact > 0, no_contact_share, 1.0),
        (1 - no_contact_share) / np.maximum(n_contact, 1),
    )
    y = rng.random(n) < p_true[np.arange(n), a_log]
    reward = value * (1 - y) - cost[a_log]
    q = est["value"][:, None] * (1 - est["p"]) - cost[None, :]
    G = dr_pseudo_outcomes(a_log, p_log, reward, q)
    inc = dr_difference(G, policy_matrix(choice, K), policy_matrix(np.zeros(n, int), K), rng=rng, n_boot=n_boot)
    ev_t = truth_ev(truth, customers, catalogue)
    true_inc = float(ev_t[np.arange(n), choice].mean())
    return {
        "dr_incremental_per_customer": inc.as_dict(),
        "true_incremental_per_customer": true_inc,
        "contains_true_value": inc.contains(true_inc),
        "logged_contacts": int(contact.sum()),
    }


def evaluate_at_cutoff(
    model: NextBestAction,
    tables: Tables,
    cutoff: pd.Timestamp,
    config: PolicyConfig,
    *,
    pipeline=None,
    churn_probability: np.ndarray | None = None,
    rng: np.random.Generator,
    n_boot: int = 300,
) -> dict:
    """Decide for every customer at ``cutoff`` under ``config``; with truth, vs oracle and baselines."""
    data = tables.without_truth()
    customers = data.customers
    F = _features(data, cutoff, pipeline)
    cat = model.catalogue
    t0 = time.time()
    decisions = model.decide(
        F.loc[customers["customer_id"].astype(str)],
        churn_probability,
        customers=customers,
        outreach=data.outreach,
        cutoff=cutoff,
        config=config,
    )
    decide_s = time.time() - t0
    hist = contact_history(data.outreach, customers["customer_id"], cutoff, config.caps.window_days)
    eligible, _, _ = eligibility(customers, hist, cat, config.caps)
    choice = _choice_index(decisions, cat)
    contacted = choice != 0
    A, b, names = limit_matrix(cat, config.limits)
    est = model.expected_values(F.loc[customers["customer_id"].astype(str)])
    churn = est["p0"] if churn_probability is None else churn_probability
    rep: dict = {
        "cutoff": str(cutoff),
        "customers": len(customers),
        "decide_seconds": decide_s,
        "contacts": int(contacted.sum()),
        "contact_cost": float(A[names.index("budget")] @ np.bincount(choice, minlength=len(cat.ids)))
        if "budget" in names
        else float(sum(cat.actions[k].cost for k in choice)),
        "actions": decisions["nba_action"].value_counts().to_dict(),
        "no_contact_reasons": decisions["no_contact_reason"].value_counts().to_dict(),
        "defense_targets": int(decisions["defense_target"].sum()),
        "defense_examples": decisions.loc[decisions["defense_target"], ["defense_reasons"]]
        .head(3)
        .reset_index()
        .to_dict("records"),
        "high_engagement_potential": int(F["high_engagement_potential"].sum())
        if "high_engagement_potential" in F
        else None,
        "estimated_incremental_value": float(decisions["nba_expected_incremental_value"].sum()),
        "constraint_violations": constraint_violations(choice, customers, hist, cat, config),
        "limits": {
            nm: {"used": float(u), "cap": float(c)}
            for nm, u, c in zip(names, A @ np.bincount(choice, minlength=len(cat.ids)), b, strict=True)
        },
    }
    rep["defense_coverage"] = (
        float(contacted[decisions["defense_target"].to_numpy()].mean()) if decisions["defense_target"].any() else None
    )
    if tables.truth is None:
        return rep
    ev_t = truth_ev(tables.truth, customers, cat)
    oracle = assign(ev_t, eligible, A, b, min_value=0.0)
    base = baseline_choices(
        F.loc[customers["customer_id"].astype(str)],
        eligible,
        cat,
        churn,
        int(contacted.sum()),
        A,
        b,
        rng,
        ev_single=ev_t,
    )
    pv, ov = total_value(ev_t, choice), total_value(ev_t, oracle)
    rows = np.arange(len(choice))
    true_effect = ev_t + np.array([a.cost for a in cat.actions])[None, :]  # value x churn reduction
    rep["truth"] = {
        "policy_value": pv,
        "oracle_value": ov,
        "no_contact_value": 0.0,
        "captured_uplift_ratio": pv / ov if ov > 0 else None,
        "baselines": {k: total_value(ev_t, v) for k, v in base.items() if k != "best_single_action_id"},
        "best_single_action": cat.ids[int(base["best_single_action_id"][0])],
        "ratio_to_top_churn": pv / total_value(ev_t, base["top_churn_most_opened"])
        if total_value(ev_t, base["top_churn_most_opened"]) > 0
        else None,
        # the bar: at least 1.2 x the top-churn baseline's true uplift (a ratio is undefined when that
        # baseline loses value, which it does whenever the riskiest customers are lost causes)
        "beats_top_churn_1_2x": bool(pv > 0 and pv >= 1.2 * total_value(ev_t, base["top_churn_most_opened"])),
        "oracle_contacts": int((oracle != 0).sum()),
        "share_harmed_true": float((contacted & (true_effect[rows, choice] < 0)).mean()),
        "baseline_share_harmed_true": {
            k: float(((v != 0) & (true_effect[rows, v] < 0)).mean())
            for k, v in base.items()
            if k != "best_single_action_id"
        },
        "effect_sign_agreement": _sign_agreement(est, tables.truth, customers, cat),
        "value_correlation": float(
            np.corrcoef(
                est["value"],
                tables.truth.set_index(tables.truth["customer_id"].astype(str)).loc[
                    customers["customer_id"].astype(str), "value"
                ],
            )[0, 1]
        ),
    }
    rep["truth"]["ope_check"] = simulated_experiment_check(
        tables.truth, customers, cat, eligible, choice, est, rng, n_boot
    )
    return rep


def _sign_agreement(est: dict, truth: pd.DataFrame, customers: pd.DataFrame, cat: Catalogue) -> float:
    t = truth.assign(customer_id=truth["customer_id"].astype(str)).set_index("customer_id")
    t = t.loc[customers["customer_id"].astype(str)]
    alive = t["p_churn_no_contact"].to_numpy() < 1.0
    true = t[[f"p_churn__{a}" for a in cat.ids[1:]]].to_numpy() - t[["p_churn_no_contact"]].to_numpy()
    mine = est["p"][:, 1:] - est["p0"][:, None]
    big = (np.abs(true) >= 0.005) & alive[:, None]
    return float((np.sign(true[big]) == np.sign(mine[big])).mean()) if big.any() else float("nan")


# --------------------------------------------------------------------------------------------- entry point
def train_and_evaluate(
    tables: Tables,
    catalogue: Catalogue,
    config: PolicyConfig,
    train: PolicyTrainConfig,
    *,
    cutoff: pd.Timestamp | None = None,
    pipeline=None,
    scenarios: dict[str, PolicyConfig] | None = None,
    labels_fn: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[NextBestAction, dict]:
    """Train the policy on logged outreach before ``cutoff`` and evaluate it; returns ``(model, report)``.

    ``cutoff`` defaults to the simulator's evaluation cutoff (``meta["manifest"]["cutoff"]``) or the last
    touchpoint. ``scenarios`` maps names to decision settings evaluated at the cutoff (default: ``config``
    as given under the name ``"configured"``).
    """
    rng = np.random.default_rng(train.seed)
    cutoff = evaluation_cutoff(tables, cutoff)
    if cutoff is None:
        raise ValueError("touchpoints: the log is empty, so there is no cutoff to train the policy at")
    t0 = time.time()
    if pipeline is None:
        from features.builders.pipeline import FeaturePipeline

        pipeline = FeaturePipeline().fit(tables.without_truth(), cutoff=cutoff)
    cutoffs = campaign_cutoffs(
        tables.outreach, horizon_days=train.horizon_days, until=cutoff, max_campaigns=train.max_campaigns
    )
    if not cutoffs:
        raise ValueError(
            f"outreach: no campaign has a complete {train.horizon_days}-day outcome window before {cutoff.date()}"
        )
    _log(progress, f"policy: building training rows at {len(cutoffs)} campaign cutoffs")
    X, rows = training_rows(
        tables,
        cutoffs,
        catalogue,
        horizon_days=train.horizon_days,
        pipeline=pipeline,
        labels_fn=labels_fn,
        progress=progress,
    )
    held = split_customers(rows["customer_id"], train.holdout_share, rng)
    is_held = rows["customer_id"].isin(held).to_numpy()
    train_ids = np.setdiff1d(pd.unique(rows["customer_id"]), held)
    val_ids = train_ids[rng.random(len(train_ids)) < train.validation_share]
    is_val = rows["customer_id"].isin(val_ids).to_numpy() & ~is_held
    is_fit = ~is_held & ~is_val
    _log(
        progress,
        f"policy: fitting on {int(is_fit.sum()):,} rows, validating on {int(is_val.sum()):,}, "
        f"holding out {int(is_held.sum()):,}",
    )
    t1 = time.time()
    Xf, rf = X[is_fit].reset_index(drop=True), rows[is_fit].reset_index(drop=True)
    Xv, rv = X[is_val].reset_index(drop=True), rows[is_val].reset_index(drop=True)
    finals = ["reach", "plugin"] if train.final == "auto" else [train.final]
    selection = {}
    best_gain, best_final, best_thr, cands = -np.inf, finals[0], float("inf"), {}
    for final in finals:
        cand = cands[final] = fit_policy(Xf, rf, catalogue, config, replace(train, final=final))
        thr, gain = select_threshold(cand, Xv, rv, z=train.threshold_z)
        selection[final] = {"threshold": thr, "validation_dr_gain_per_row": gain}
        _log(progress, f"  {final}: threshold {thr:.2f}, validation DR gain per decision {gain:.3f}")
        if gain > best_gain:
            best_gain, best_final, best_thr = gain, final, thr
    if train.refit:
        # The final stage and threshold are chosen; the model that decides is refitted on every training
        # customer (fit + validation): with effects this small, a third more rows is worth the refit.
        _log(progress, f"  refitting {best_final!r} on {int((is_fit | is_val).sum()):,} rows")
        keep = is_fit | is_val
        cand = fit_policy(
            X[keep].reset_index(drop=True),
            rows[keep].reset_index(drop=True),
            catalogue,
            config,
            replace(train, final=best_final),
        )
    else:
        cand = cands[best_final]
    model = NextBestAction(
        cand.uplift,
        cand.value_model,
        catalogue,
        replace(config, min_incremental_value=max(config.min_incremental_value, best_thr)),
        defense_min_value=cand.defense_min_value,
    )
    fit_s = time.time() - t1
    _log(progress, "policy: off-policy evaluation on held-out logged decisions")
    Xh, rh = X[is_held].reset_index(drop=True), rows[is_held].reset_index(drop=True)
    p0_h = model.uplift.predict_churn(Xh)[0]
    report: dict = {
        "train_config": asdict(train),
        "policy_config": asdict(config),
        "method": f"effect model final stage {model.uplift.final!r} (S-learner outcome model on LightGBM); "
        "value = margin x predicted spend/day x horizon",
        "campaign_cutoffs": [str(c.date()) for c in cutoffs],
        "training_rows": int((~is_held).sum()),
        "heldout_rows": int(is_held.sum()),
        "fit_seconds": fit_s,
        "model_selection": selection,
        "selected_threshold": model.config.min_incremental_value,
        "effect_features": getattr(model.uplift, "effect_feature_names_", None),
        "effect_screen_loss": {str(k): v for k, v in getattr(model.uplift, "screen_loss_", {}).items()},
        "off_policy": offline_estimates(model, Xh, rh, p0_h, rng, train.n_boot),
        "uplift_curve": uplift_curve(model, Xh, rh),
        "scenarios": {},
    }
    for name, cfg in (scenarios or {"configured": config}).items():
        _log(progress, f"policy: deciding at {cutoff.date()} ({name})")
        cfg = replace(cfg, min_incremental_value=max(cfg.min_incremental_value, model.config.min_incremental_value))
        report["scenarios"][name] = evaluate_at_cutoff(
            model, tables, cutoff, cfg, pipeline=pipeline, rng=rng, n_boot=train.n_boot
        )
    report["seconds"] = time.time() - t0
    return model, report


# --------------------------------------------------------------------------------------------- commands
def _flat_metrics(report: dict) -> dict[str, float]:
    """The headline figures of a report as flat MLflow metrics."""
    out: dict[str, float] = {}
    off = report["off_policy"]["policies"]
    for name, res in off.items():
        for est in ("ips", "snips", "dr", "dr_incremental"):
            if est in res:
                out[f"ope_{name}_{est}"] = res[est]["value"]
                out[f"ope_{name}_{est}_low"] = res[est]["low"]
                out[f"ope_{name}_{est}_high"] = res[est]["high"]
    out["ope_share_harmed_estimated"] = report["off_policy"]["share_harmed_estimated"]
    for sc, rep in report["scenarios"].items():
        out[f"{sc}_contacts"] = rep["contacts"]
        out[f"{sc}_defense_targets"] = rep["defense_targets"]
        out[f"{sc}_constraint_violations"] = float(sum(rep["constraint_violations"].values()))
        out[f"{sc}_decide_seconds"] = rep["decide_seconds"]
        truth = rep.get("truth")
        if truth:
            for k in (
                "policy_value",
                "oracle_value",
                "captured_uplift_ratio",
                "ratio_to_top_churn",
                "share_harmed_true",
                "effect_sign_agreement",
                "beats_top_churn_1_2x",
            ):
                if truth.get(k) is not None:
                    out[f"{sc}_{k}"] = float(truth[k])
            for k, v in truth["baselines"].items():
                out[f"{sc}_baseline_{k}"] = float(v)
            out[f"{sc}_ope_check_contains_true"] = float(truth["ope_check"]["contains_true_value"])
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _policy_plot(report: dict, path) -> None:
    """Bar chart of the off-policy DR incremental values with their 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    off = report["off_policy"]["policies"]
    names = list(off)
    vals = [off[n]["dr_incremental"]["value"] for n in names]
    err = [
        [v - off[n]["dr_incremental"]["low"] for n, v in zip(names, vals, strict=True)],
        [off[n]["dr_incremental"]["high"] - v for n, v in zip(names, vals, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(names, vals, yerr=err, capsize=4)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("DR incremental value per decision")
    ax.set_title("Policy value vs no contact (held-out log, 95 % bootstrap)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _uplift_plot(report: dict, path) -> None:
    """The held-out uplift (Qini-style) curve: DR gain per decision vs share contacted, and random."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cur = report["uplift_curve"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(cur["share"], cur["gain"], marker="o", ms=3, label="learned ranking, best action")
    ax.plot(cur["share"], cur["random"], ls="--", label="random contact")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("share of held-out decisions contacted")
    ax.set_ylabel("DR gain per decision")
    ax.set_title("Uplift curve (held-out log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def default_scenarios(config: PolicyConfig, tables: Tables) -> dict[str, PolicyConfig]:
    """The configured limits, and a binding one: a budget of 0.5 x customers currency units, calls <= 1 %."""
    n = len(tables.customers)
    return {
        "configured": config,
        "budget": config.with_limits(
            budget=0.5 * n, per_channel={**config.limits.per_channel, "call": max(1, n // 100)}
        ),
    }


def train_policy_command(
    data,
    config_path=None,
    report_path=None,
    *,
    policy_config_path=None,
    catalogue_path=None,
    register: bool = True,
    train: PolicyTrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """``engage train policy``: train on a data folder, log to MLflow, register the decision system.

    The feature pipeline and churn model come from the churn champion (``engage train churn`` first);
    the policy is added to them and the whole decision system is registered as one unit under
    ``registered_models.system`` with the challenger alias, promoted to champion under the same rules.
    """
    import json
    import tempfile
    from pathlib import Path

    import mlflow

    from features.contract.catalogue import load_catalogue
    from features.decision.config import load_policy_config
    from features.sources.io import read_tables
    from features.system import DecisionSystem
    from training.registry import (
        experiment_id,
        input_example,
        load_config,
        load_decision_system,
        log_decision_system,
        register_and_promote,
    )

    config = load_config(config_path)
    mlflow.set_tracking_uri(config.tracking_uri)
    tables = read_tables(Path(data))
    catalogue = load_catalogue(catalogue_path)
    pconfig = load_policy_config(policy_config_path)
    train = train or PolicyTrainConfig()
    churn_uri = f"models:/{config.registered_models.get('churn', 'engage-churn')}@{config.champion}"
    try:
        churn_system = load_decision_system(churn_uri)
    except Exception as exc:
        raise ValueError(f"no churn champion at {churn_uri}: run `engage train churn` first ({exc})") from exc
    model, report = train_and_evaluate(
        tables,
        catalogue,
        pconfig,
        train,
        pipeline=churn_system.pipeline,
        scenarios=default_scenarios(pconfig, tables),
        progress=progress,
    )
    system = DecisionSystem(
        churn_system.pipeline,
        churn_system.churn_model,
        policy=model,
        metadata={**churn_system.metadata, "policy": report["method"]},
    )
    registry = None
    with mlflow.start_run(experiment_id=experiment_id(config, "policy"), run_name="policy"):
        mlflow.log_params({f"train.{k}": v for k, v in asdict(train).items()})
        mlflow.log_params(
            {
                "policy.min_incremental_value": model.config.min_incremental_value,
                "policy.epsilon": pconfig.epsilon,
                "churn_model": churn_uri,
            }
        )
        mlflow.log_metrics(_flat_metrics(report))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "policy_report.json").write_text(json.dumps(report, indent=2, default=str))
            _policy_plot(report, Path(tmp) / "policy_value.png")
            _uplift_plot(report, Path(tmp) / "uplift_curve.png")
            (Path(tmp) / "uplift_curve.json").write_text(json.dumps(report["uplift_curve"], indent=2))
            mlflow.log_artifacts(tmp)
        if register:
            name = config.registered_models.get("system", "engage-decision-system")
            info = log_decision_system(
                system,
                example=input_example(tables),
                cutoff=report["scenarios"]["configured"]["cutoff"],
                registered_model_name=name,
            )
            churn_metrics = _version_metrics(config, churn_uri)
            registry = register_and_promote(
                config,
                info,
                challenger_metrics=churn_metrics,
                champion_metrics_fn=lambda uri: _version_metrics(config, uri),
                model_key="system",
            )
    report["mlflow"] = registry
    if report_path is not None:
        write_json(report_path, report)
    return report


def _version_metrics(config, uri: str) -> dict[str, float]:
    """Test metrics recorded as tags on a registered version (``models:/name@alias|/version``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri)
    ref = uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@")
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, version = ref.split("/")
        mv = client.get_model_version(name, version)
    return {k: float(mv.tags[f"test_{k}"]) for k in ("auc", "brier", "ece") if f"test_{k}" in mv.tags}


def evaluate_policy_command(
    data,
    report_path=None,
    *,
    policy_config_path=None,
    catalogue_path=None,
    train: PolicyTrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """``engage evaluate policy --data DIR --report FILE.json``: train on the log, evaluate, write the report.

    Needs no MLflow: the policy is trained from the folder's outreach log with a freshly fitted feature
    pipeline, evaluated off-policy on held-out customers and, for simulated data, against the truth.
    """
    from pathlib import Path

    from features.contract.catalogue import load_catalogue
    from features.decision.config import load_policy_config
    from features.sources.io import read_tables

    tables = read_tables(Path(data))
    catalogue = load_catalogue(catalogue_path)
    pconfig = load_policy_config(policy_config_path)
    _, report = train_and_evaluate(
        tables,
        catalogue,
        pconfig,
        train or PolicyTrainConfig(),
        scenarios=default_scenarios(pconfig, tables),
        progress=progress,
    )
    summary = summarise(report)
    report = {**summary, **report}
    if report_path is not None:
        write_json(report_path, report)
    return report


def summarise(report: dict) -> dict:
    """The issue's headline keys at the top level of the report (from the binding-budget scenario)."""
    sc = report["scenarios"].get("budget") or next(iter(report["scenarios"].values()))
    out = {
        "constraint_violations": int(sum(sc["constraint_violations"].values())),
        "off_policy_estimates": report["off_policy"]["policies"],
    }
    truth = sc.get("truth")
    if truth:
        out.update(
            {
                k: truth[k]
                for k in (
                    "policy_value",
                    "oracle_value",
                    "no_contact_value",
                    "captured_uplift_ratio",
                    "baselines",
                    "ratio_to_top_churn",
                    "beats_top_churn_1_2x",
                )
            }
        )
    return out

