"""Scoring fast path: numpy predictions and top-k reason codes equal the plain (pandas) reference path."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.builders.pipeline import FeaturePipeline
from features.contract.schema import IN_MARKET, SOCIAL_LADDER, STORE_LADDER
from features.labels import make_labels
from features.models import lgbm as models
from features.models.churn import ChurnModel
from features.models.lgbm import booster_predict
from features.system import DecisionSystem, _names

TOL = 1e-9


@pytest.fixture(scope="module")
def system(make_world) -> tuple[DecisionSystem, pd.DataFrame, pd.Timestamp, object]:
    world = make_world(600, 300, seed=8)
    cutoff = pd.Timestamp(world.meta["manifest"]["cutoff"])
    train_at, val_at = cutoff - pd.Timedelta(days=180), cutoff - pd.Timedelta(days=90)
    tables = world.without_truth()
    pipe = FeaturePipeline(n_jobs=1).fit(tables, cutoff=train_at)
    labels = make_labels(world, [train_at, val_at])

    def frame(at):
        keys = labels[labels["cutoff"] == at]
        return pipe.transform(tables, cutoff=at).loc[keys["customer_id"]], keys["label"].to_numpy()

    F_tr, y_tr = frame(train_at)
    F_va, y_va = frame(val_at)
    model = ChurnModel({"min_child_samples": 20}, num_boost_round=60, early_stopping_rounds=20, seed=3)
    model.fit(F_tr, y_tr, F_va, y_va)
    return DecisionSystem(pipe, model, metadata={"model_version": "t1"}), F_va, cutoff, world


def reference_probability(model: ChurnModel, F: pd.DataFrame) -> np.ndarray:
    """The pre-fast-path computation: LightGBM on the reindexed pandas frame, default threads."""
    raw = model.booster_.predict(
        F.reindex(columns=model.feature_names_), raw_score=True, num_iteration=model.best_iteration_
    )
    return np.clip(model.calibrator_.transform(raw), 0, 1) if model.calibrator_ else 1 / (1 + np.exp(-raw))


def reference_reasons(model: ChurnModel, F: pd.DataFrame, top: int) -> list[list[dict]]:
    """The pre-fast-path reason codes: full SHAP matrix on the frame, full argsort per row."""
    contrib = model.booster_.predict(
        F.reindex(columns=model.feature_names_), pred_contrib=True, num_iteration=model.best_iteration_
    )[:, :-1]
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
    out = []
    for i in range(len(contrib)):
        row = []
        for j in order[i]:
            if contrib[i, j] <= 0:
                break
            name = model.feature_names_[j]
            row.append({"feature": name, "label": model.feature_labels_[name], "contribution": float(contrib[i, j])})
        out.append(row)
    return out


def assert_same_reasons(got: list[list[dict]], want: list[list[dict]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert [r["feature"] for r in g] == [r["feature"] for r in w]
        assert [r["label"] for r in g] == [r["label"] for r in w]
        np.testing.assert_allclose([r["contribution"] for r in g], [r["contribution"] for r in w], rtol=0, atol=TOL)


@pytest.mark.parametrize("top", [1, 3, 5])
def test_fast_path_equals_reference(system, top):
    ds, F, _, _ = system
    model = ds.churn_model
    p, reasons = model.predict_with_reasons(F, top=top)
    np.testing.assert_allclose(p, reference_probability(model, F), rtol=0, atol=TOL)
    np.testing.assert_allclose(model.predict_proba(F), p, rtol=0, atol=TOL)
    assert_same_reasons(reasons, reference_reasons(model, F, top))
    assert_same_reasons(model.reason_codes(F, top=top), reasons)
    assert any(len(r) == top for r in reasons)  # the comparison covers full top-k lists


def test_single_rows_equal_the_batch(system):
    ds, F, _, _ = system
    p_all, r_all = ds.churn_model.predict_with_reasons(F)
    for i in range(0, len(F), max(1, len(F) // 15)):
        p, r = ds.churn_model.predict_with_reasons(F.iloc[[i]])
        assert abs(p[0] - p_all[i]) <= TOL
        assert_same_reasons(r, [r_all[i]])


def test_columns_matched_by_name_whatever_their_order_or_absence(system):
    ds, F, _, _ = system
    model = ds.churn_model
    shuffled = F[F.columns[::-1]]
    np.testing.assert_allclose(model.predict_proba(shuffled), model.predict_proba(F), rtol=0, atol=TOL)
    dropped = F.drop(columns=F.columns[:5])
    np.testing.assert_allclose(model.predict_proba(dropped), reference_probability(model, dropped), rtol=0, atol=TOL)
    assert_same_reasons(model.reason_codes(dropped), reference_reasons(model, dropped, 3))
    with pytest.raises(ValueError, match="none of the model's"):
        model.predict_proba(pd.DataFrame({"unrelated": [1.0]}))


def test_reasons_only_above_a_probability(system):
    ds, F, _, _ = system
    p, full = ds.churn_model.predict_with_reasons(F)
    threshold = float(np.quantile(p, 0.7))
    _, part = ds.churn_model.predict_with_reasons(F, min_probability=threshold)
    for pi, f, r in zip(p, full, part, strict=True):
        assert r == (f if pi >= threshold else [])
    out = ds.score_features(F, reasons=0)
    assert all(r == [] for r in out["churn_reasons"])


def test_score_features_output(system):
    ds, F, _, _ = system
    out = ds.score_features(F)
    assert list(out["customer_id"]) == list(F.index.astype(str))
    np.testing.assert_allclose(out["churn_probability"], reference_probability(ds.churn_model, F), rtol=0, atol=TOL)
    assert_same_reasons(list(out["churn_reasons"]), reference_reasons(ds.churn_model, F, 3))
    assert (out["model_version"] == "t1").all()
    assert out["nba_action"].isna().all()  # no policy in this system
    empty = ds.score_features(F.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)


def test_ladder_names_match_the_plain_lookup():
    values = pd.Series([0, 1.0, 3, 4, -1, np.nan, 2.7, -0.5], dtype=float)
    for names in (STORE_LADDER, SOCIAL_LADDER, IN_MARKET):
        plain = [names[int(c)] if np.isfinite(c) and 0 <= c < len(names) else None for c in values]
        assert list(_names(values, names, len(values))) == plain
    assert list(_names(None, STORE_LADDER, 2)) == [None, None]


def test_pickled_system_scores_the_same(system):
    ds, _, cutoff, world = system
    ids = world.customers["customer_id"].iloc[:40]
    tables = world.without_truth().subset(ids)
    before = ds.score(tables, cutoff)
    loaded = pickle.loads(pickle.dumps(ds))
    after = loaded.score(tables, cutoff)
    pd.testing.assert_frame_equal(before, after)
    # A model pickled before the cached column index existed still scores (the cache is rebuilt).
    del loaded.churn_model.__dict__["feature_index_"]
    old = pickle.loads(pickle.dumps(loaded))
    pd.testing.assert_frame_equal(old.score(tables, cutoff), before)
    for i in range(3):
        one = old.score(world.without_truth().subset(ids.iloc[[i]]), cutoff)
        assert abs(one["churn_probability"].iloc[0] - before["churn_probability"].iloc[i]) <= TOL
        assert_same_reasons(list(one["churn_reasons"]), [before["churn_reasons"].iloc[i]])


def test_chunked_threads_give_the_same_numbers(system, monkeypatch):
    ds, F, _, _ = system
    model = ds.churn_model
    p1, r1 = model.predict_with_reasons(F)
    X = model._matrix(F)
    single = booster_predict(model.booster_, X, num_iteration=model.best_iteration_, pred_contrib=True)
    monkeypatch.setattr(models, "PARALLEL_MIN_ROWS", 10)  # split even this small table across threads
    chunked = booster_predict(model.booster_, X, num_iteration=model.best_iteration_, num_threads=3, pred_contrib=True)
    np.testing.assert_array_equal(chunked, single)
    p2, r2 = model.predict_with_reasons(F)
    np.testing.assert_array_equal(p2, p1)
    assert r2 == r1


# ---- the policy's numpy path ------------------------------------------------------------------------

POLICY_TOL = 1e-12


def reference_churn(uplift, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The pre-numpy computation: one pandas design frame and one sklearn call per action."""
    p0, effect = reference_effect(uplift, X)
    p = np.clip(p0[:, None] + effect, 0.0, 1.0)
    p[:, 0] = p0
    return p0, p


def reference_effect(uplift, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(p_no_contact, predict_effect)`` the pre-numpy way."""
    X = X.reset_index(drop=True)
    n, K = len(X), len(uplift.actions)
    p0 = uplift.outcome_model_.predict_proba(uplift._design(X, np.zeros(n, dtype=int)))[:, 1]
    if uplift.final == "plugin":
        mu = np.column_stack(
            [uplift.outcome_model_.predict_proba(uplift._design(X, np.full(n, k)))[:, 1] for k in range(K)]
        )
        effect = mu - mu[:, [0]]
    elif uplift.final == "reach":  # reach_c(x) * (b_o + gamma'z(x)), written out on the frame
        Z = ((X[uplift.feature_names_].astype(float) - uplift.z_mean_) / uplift.z_scale_).fillna(0.0).clip(-4, 4)
        g = Z.to_numpy() @ uplift.effect_coef_[0]
        effect = np.zeros((n, K))
        for k in range(1, K):
            c, o = uplift.channel_of_[k], uplift.offer_of_[k]
            col = uplift.reach_features_.get(c)
            r = 1.0 if col is None else X[col].astype(float).fillna(uplift.reach_fill_[c]).clip(0, 1).to_numpy()
            effect[:, k] = r * (uplift.offer_effect_[o] + g)
    else:
        effect = np.zeros((n, K))
        for k in range(1, K):
            effect[:, k] = uplift.effect_models_[k].predict(X[uplift.feature_names_].astype(float))
    return p0, effect


def reference_value(value_model, X: pd.DataFrame) -> np.ndarray:
    rate = value_model.model_.predict(X[value_model.feature_names_].astype(float))
    return value_model.margin * np.maximum(rate, 0.0) * value_model.horizon_days


@pytest.fixture(scope="module")
def policy_system(system):
    """The churn system plus a policy fitted on its features, with outcomes that depend on the action."""
    from features.contract.catalogue import load_catalogue
    from features.decision.config import load_policy_config
    from features.decision.nba import NextBestAction
    from features.models.uplift import UpliftModel
    from features.models.value import ValueModel

    F_va = system[1]
    catalogue = load_catalogue()
    ids = catalogue.ids
    rng = np.random.default_rng(5)
    X = pd.concat([F_va] * 4, ignore_index=True)
    a = rng.integers(0, len(ids), len(X))
    channel = np.array([i.split(":")[0] for i in ids])[a]
    risk = 1 / (1 + np.exp(-(X["days_since_last_active"].fillna(200).to_numpy() / 60 - 1)))
    # Calls and discounts help, e-mails without an offer annoy: the trees must split on the action columns.
    shift = np.where(channel == "call", -0.3, 0.0) + np.where(np.char.find(np.array(ids)[a], "discount") > 0, -0.2, 0.0)
    shift += np.where(np.array(ids)[a] == "email:none", 0.25, 0.0)
    y = (rng.random(len(X)) < np.clip(risk + shift, 0.02, 0.98)).astype(int)
    policies = {}
    for final in ("plugin", "dr", "reach"):
        uplift = UpliftModel(ids, outcome_estimators=80, effect_estimators=30, effect_min_child_samples=50, final=final)
        uplift.fit(X, np.asarray(ids, dtype=object)[a], np.full(len(X), 1 / len(ids)), y)
        value = ValueModel(n_estimators=40).fit(X, rng.gamma(1.0, 2.0, len(X)))
        policies[final] = NextBestAction(uplift, value, catalogue, load_policy_config())
    return policies, F_va


@pytest.mark.parametrize("final", ["plugin", "dr", "reach"])
def test_policy_numpy_path_equals_the_pandas_path(policy_system, final):
    policies, F = policy_system
    uplift, value = policies[final].uplift, policies[final].value_model
    p0, p = uplift.predict_churn(F)
    r0, rp = reference_churn(uplift, F)
    np.testing.assert_allclose(p0, r0, rtol=0, atol=POLICY_TOL)
    np.testing.assert_allclose(p, rp, rtol=0, atol=POLICY_TOL)
    np.testing.assert_allclose(uplift.predict_effect(F), reference_effect(uplift, F)[1], rtol=0, atol=POLICY_TOL)
    for i in range(0, len(F), max(1, len(F) // 12)):  # one customer at a time, as the service scores
        q0, q = uplift.predict_churn(F.iloc[[i]])
        np.testing.assert_allclose(q0, r0[[i]], rtol=0, atol=POLICY_TOL)
        np.testing.assert_allclose(q, rp[[i]], rtol=0, atol=POLICY_TOL)
    np.testing.assert_array_equal(value.predict(F), reference_value(value, F))
    if final == "dr":  # the per-action effect regressors run as one merged model
        assert uplift._effect_plan()["merged"] is not None
    shuffled = F[F.columns[::-1]]  # columns are matched by name
    np.testing.assert_allclose(uplift.predict_churn(shuffled)[1], rp, rtol=0, atol=POLICY_TOL)
    assert uplift.predict_churn(F.iloc[:0])[1].shape == (0, len(uplift.actions))
    with pytest.raises(KeyError):
        uplift.predict_churn(F.drop(columns=uplift.feature_names_[:1]))


def test_outcome_trees_are_resolved_per_action_once(policy_system):
    policies, F = policy_system
    uplift = policies["plugin"].uplift
    plan = uplift._outcome_plan()
    assert plan["layout"] is not None and plan["pruned"] is not None
    booster = uplift.outcome_model_.booster_
    K = len(uplift.actions)
    action_columns = set(plan["layout"]["act_pos"].tolist())
    dump = booster.dump_model()["tree_info"]

    def splits(node) -> set[int]:
        if "split_feature" not in node:
            return set()
        return {node["split_feature"]} | splits(node["left_child"]) | splits(node["right_child"])

    assert any(splits(t["tree_structure"]) & action_columns for t in dump)  # the test model uses the actions
    n_resolved = plan["pruned"]["booster"].num_trees()
    assert len(dump) <= n_resolved < K * len(dump)
    # The design path (used for the cross-fitted models in fit) gives LightGBM's own numbers bit for bit.
    X = F.reset_index(drop=True)
    design = uplift._predict_all(uplift.outcome_model_, F, np.arange(K))
    for k in range(K):
        want = uplift.outcome_model_.predict_proba(uplift._design(X, np.full(len(X), k)))[:, 1]
        np.testing.assert_array_equal(design[:, k], want)


def test_pickled_policy_loads_with_or_without_its_cached_plan(policy_system):
    policies, F = policy_system
    policy = policies["plugin"]
    want = policy.expected_values(F)["ev"]
    assert "outcome_plan_" in policy.uplift.__dict__  # built lazily by the first prediction
    with_plan = pickle.loads(pickle.dumps(policy))
    np.testing.assert_array_equal(with_plan.expected_values(F)["ev"], want)
    plain = pickle.loads(pickle.dumps(policy))
    del plain.uplift.__dict__["outcome_plan_"]  # as pickled before the plan existed
    plain = pickle.loads(pickle.dumps(plain))
    np.testing.assert_array_equal(plain.expected_values(F)["ev"], want)
    # A refitted outcome model is never predicted with a stale plan.
    stale = pickle.loads(pickle.dumps(policy))
    stale.uplift.outcome_model_ = pickle.loads(pickle.dumps(stale.uplift.outcome_model_))
    np.testing.assert_array_equal(stale.expected_values(F)["ev"], want)
    assert stale.uplift.outcome_plan_["source"] is stale.uplift.outcome_model_.booster_


def test_system_with_policy_scores_like_the_pandas_path(system, policy_system):
    from features.decision.eligibility import consent_from_features, history_from_features
    from features.decision.nba import active_customers
    from features.decision.rule import decide, expected_incremental_value

    ds, _, cutoff, world = system
    policies, F = policy_system
    policy = policies["plugin"]
    full = DecisionSystem(ds.pipeline, ds.churn_model, policy, metadata={"model_version": "t2"})
    out = full.score_features(F)
    r0, rp = reference_churn(policy.uplift, F)
    value = reference_value(policy.value_model, F)
    ev = expected_incremental_value(r0, rp, value, policy.catalogue)
    want = decide(
        ev,
        consent_from_features(F),
        policy.catalogue,
        policy.config,
        history=history_from_features(F),
        churn_probability=out["churn_probability"].to_numpy(),
        value=value,
        active=active_customers(F, policy.config),
    )
    assert (out["nba_action"] != "no_contact").any()
    assert list(out["nba_action"]) == list(want["nba_action"])
    assert list(out["no_contact_reason"].fillna("-")) == list(want["no_contact_reason"].fillna("-"))
    assert list(out["defense_target"]) == list(want["defense_target"])
    np.testing.assert_allclose(
        out["nba_expected_incremental_value"], want["nba_expected_incremental_value"], rtol=0, atol=1e-9
    )
    for got, ref in zip(out["alternatives"], want["alternatives"], strict=True):
        assert [a["action"] for a in got] == [a["action"] for a in ref]
        np.testing.assert_allclose(
            [a["expected_incremental_value"] for a in got], [a["expected_incremental_value"] for a in ref], atol=1e-9
        )
    # From raw touchpoints, one customer at a time (as the service scores), the same decisions as in a batch.
    ids = world.customers["customer_id"].iloc[:8]
    tables = world.without_truth().subset(ids)
    batch = full.score(tables, cutoff)
    full.warm_up()
    for i in range(len(ids)):
        one = full.score(world.without_truth().subset(ids.iloc[[i]]), cutoff)
        assert one["nba_action"].iloc[0] == batch["nba_action"].iloc[i]
        ev = "nba_expected_incremental_value"
        assert abs(one[ev].iloc[0] - batch[ev].iloc[i]) <= 1e-12


def test_batch_table_by_columns_equals_rows_with_a_real_policy(system, policy_system):
    """The batch file's columnar conversion gives the row conversion's table for a real decision system;
    the feature-table reason modes give every, at-risk or no customer reason codes."""
    from serving.engine import ModelInfo, ScoringEngine
    from serving.responses import columns_to_results, columns_to_table, results_to_frame

    ds, _, _, _ = system
    policies, F = policy_system
    full = DecisionSystem(ds.pipeline, ds.churn_model, policies["reach"], metadata={"model_version": "t3"})
    engine = ScoringEngine(full, ModelInfo("t3"))
    cut = pd.Timestamp("2024-01-01", tz="UTC")
    cols = engine.score_feature_columns(F, cut, "all")
    table = columns_to_table(cols, len(F), cut)
    pd.testing.assert_frame_equal(table, results_to_frame(columns_to_results(cols, len(F)), cut))
    assert (table["alternatives"] != "[]").any() and (table["churn_reasons"] != "[]").all()
    none = columns_to_table(engine.score_feature_columns(F, cut, "none"), len(F), cut)
    assert (none["churn_reasons"] == "[]").all()
    pd.testing.assert_frame_equal(none.drop(columns="churn_reasons"), table.drop(columns="churn_reasons"))
    risky = columns_to_table(engine.score_feature_columns(F, cut, "at-risk"), len(F), cut)
    at_risk = table["churn_probability"] >= full.at_risk_probability
    assert (risky.loc[at_risk, "churn_reasons"] == table.loc[at_risk, "churn_reasons"]).all()
    assert (risky.loc[~at_risk, "churn_reasons"] == "[]").all()
    with pytest.raises(ValueError, match="reasons"):
        engine.score_feature_columns(F, cut, "some")


@pytest.mark.parametrize("final", ["plugin", "dr", "reach"])
def test_large_frames_are_valued_in_row_chunks_with_the_same_numbers(policy_system, final, monkeypatch):
    import features.decision.nba as nba

    policies, F = policy_system
    want = policies[final].expected_values(F)
    monkeypatch.setattr(nba, "PREDICT_ROWS", max(1, len(F) // 5))  # several chunks and a ragged last one
    got = policies[final].expected_values(F)
    assert set(got) == set(want)
    for key in want:  # the plugin's summed trees may differ in the last bit with the batch size, as one by one
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=POLICY_TOL)


class CountingValue:
    """A customer-value model stand-in that counts its predictions."""

    horizon_days = 90

    def __init__(self) -> None:
        self.feature_names_ = ["days_since_last_active"]
        self.calls = 0

    def predict(self, F: pd.DataFrame, *, matrix=None) -> np.ndarray:
        self.calls += 1
        return 3.0 / (1.0 + F["days_since_last_active"].fillna(400).to_numpy(dtype=float)) + 0.1

    def decile(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted([0.12, 0.2], values) + 1


@pytest.mark.parametrize("chunked", [False, True])
def test_the_policy_reuses_the_scored_customer_value(system, policy_system, chunked, monkeypatch):
    """A policy whose value model wraps the system's own takes the scored customer_value instead of
    predicting it again; the scores equal those of a policy predicting it itself (an equal, separate model),
    also when the policy values a large frame in row chunks."""
    import features.decision.nba as nba
    from features.decision.nba import NextBestAction
    from features.models.ltv import PolicyValue

    ds, F = system[0], system[1]
    chunks = 1
    if chunked:
        monkeypatch.setattr(nba, "PREDICT_ROWS", max(1, len(F) // 3))
        chunks = -(-len(F) // nba.PREDICT_ROWS)
        assert chunks > 1
    plugin = policy_system[0]["plugin"]
    own, other = CountingValue(), CountingValue()

    def with_value(wrapped: CountingValue) -> DecisionSystem:
        policy = NextBestAction(plugin.uplift, PolicyValue(wrapped, 730), plugin.catalogue, plugin.config)
        return DecisionSystem(ds.pipeline, ds.churn_model, policy, metadata=dict(ds.metadata), value_model=own)

    shared = with_value(own).score_features(F)
    assert own.calls == 1
    separate = with_value(other).score_features(F)
    assert own.calls == 2 and other.calls == chunks
    pd.testing.assert_frame_equal(shared, separate, check_exact=True)
    assert shared["customer_value"].nunique() > 1
