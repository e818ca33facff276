"""Personas: k chosen by stability, names from what sets each apart, names kept across refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.models.persona_names import generated_names, phrase
from features.models.personas import PersonaModel, match_centroids

# Six well-separated groups, each far above the population on its own feature.
GROUP_FEATURES = ("buy_intent_score", "device_mobile_share", "price_sensitivity", "engagement_index",
                  "complaints_90d", "loyal")


def blobs(n_per: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for g, feature in enumerate(GROUP_FEATURES):
        block = rng.normal(0.0, 0.3, size=(n_per, len(GROUP_FEATURES)))
        block[:, g] += 4.0
        rows.append(block)
        truth += [feature] * n_per
    F = pd.DataFrame(np.vstack(rows), columns=list(GROUP_FEATURES))
    F["tenure_days"] = rng.normal(0.0, 0.3, len(F))  # noise every group shares
    order = rng.permutation(len(F))
    F = F.iloc[order].reset_index(drop=True)
    F.index = pd.Index([f"c{i}" for i in range(len(F))], name="customer_id")
    return F, np.asarray(truth)[order]


@pytest.fixture(scope="module")
def first() -> tuple[PersonaModel, pd.DataFrame, np.ndarray]:
    F, truth = blobs(60, seed=1)
    return PersonaModel(k_range=(4, 8), n_splits=2, n_init=3, random_state=0).fit(F), F, truth


def test_k_is_chosen_by_stability_and_silhouette(first) -> None:
    model, F, truth = first
    assert model.k_ == 6
    assert model.stability_ari_ > 0.95
    assert set(model.selection_) == set(range(4, 9))
    assert model.selection_[6]["silhouette"] == max(s["silhouette"] for s in model.selection_.values())
    names = model.predict(F)
    # each true group is one persona
    assert pd.crosstab(truth, names).gt(0).sum(axis=1).eq(1).all()


def test_names_and_profiles_come_from_the_distinguishing_feature(first) -> None:
    model, F, truth = first
    names = pd.Series(model.predict(F))
    for feature, want in (("buy_intent_score", "high intent"), ("device_mobile_share", "mobile-first"),
                          ("price_sensitivity", "price-sensitive"), ("complaints_90d", "complaining"),
                          ("loyal", "loyalist")):
        got = names[truth == feature].iloc[0]
        assert got.split(" · ")[0] == want, (feature, got)
    assert len(set(model.names_)) == model.k_
    for row in model.describe():
        assert len(row["profile"]) == 5
        top = row["profile"][0]
        assert abs(top["z"]) >= abs(row["profile"][-1]["z"])
        assert {"feature", "persona_mean", "population_mean", "z"} <= set(top)


def test_a_refit_keeps_the_names_of_matching_clusters(first) -> None:
    model, F, truth = first
    F2, truth2 = blobs(50, seed=7)  # new customers, new draw, another seed for k-means
    again = PersonaModel(k_range=(4, 8), n_splits=2, n_init=3, random_state=3).fit(F2, previous=model)
    for feature in GROUP_FEATURES:
        old = pd.Series(model.predict(F))[truth == feature].iloc[0]
        new = pd.Series(again.predict(F2))[truth2 == feature].iloc[0]
        assert old == new, feature
    assert sorted(again.names_) == sorted(model.names_)


def test_naming_rules() -> None:
    assert phrase("buy_intent_score", 1.0) == "high intent"
    assert phrase("buy_intent_score", -1.0) == "low intent"
    assert phrase("device_mobile_share", -1.0) is None  # no phrase for "below" on this one
    assert phrase("buy_intent_score", 0.1) is None  # too close to the population
    raw = pd.DataFrame({"buy_intent_score": [0.0, 1.0, 0.0, 1.0], "frequency": [0.0, 0.0, 1.0, 1.0]})
    means = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    names = generated_names(raw, means)
    assert len(set(names)) == 3 and names[0].startswith("high intent")
    assert names[1] != names[0]  # duplicates get told apart


def test_centroid_matching_is_one_to_one() -> None:
    old = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    new = old[[2, 0, 1]] + 0.1
    assert match_centroids(new, old) == {0: 2, 1: 0, 2: 1}


def test_too_few_customers_is_a_clear_error() -> None:
    F, _ = blobs(5, seed=1)
    with pytest.raises(ValueError, match="customers"):
        PersonaModel().fit(F)


def test_scoring_matrix_equals_the_fitted_frame_path(first) -> None:
    model, F, _ = first
    G = F.copy().astype(float)
    G.iloc[::7, 0] = np.nan  # missing values take the fit's medians
    G = G.drop(columns=[model.features_[-1]])  # an absent column too
    want = model._raw(G).to_numpy(dtype=float)
    np.testing.assert_array_equal(model._raw_matrix(G), want)
    np.testing.assert_array_equal(model.predict_index(G), model.kmeans_.predict(model._space(model._raw(G))))
    one = G.iloc[[3]]  # one customer, as the service scores
    np.testing.assert_array_equal(model._raw_matrix(one), want[[3]])
