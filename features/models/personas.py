"""Personas: a small number of named micro-segments marketers can talk about, learned from the features.

Customers are clustered with k-means in a standardised, reduced space (skewed counts log-scaled, scaled
to unit variance, PCA to 90 % of the variance). The number of personas is chosen, not eyeballed: for each
candidate k the customers are split into two random halves, k-means is fitted on each, the second fit's
clusters are mapped to the first's by centroid matching and the adjusted Rand index of the two assignments
of every customer measures stability; among the stable k (ARI >= 0.8) the best silhouette wins. A refit
with an earlier model maps its clusters to the earlier ones by their feature means, so names stay stable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score

from features.models.lgbm import feature_matrix
from features.models.persona_names import NEEDS_MAX_ABOVE, PERSONA_FEATURES, generated_names, profiles

MIN_STABILITY = 0.8


def match_centroids(new: np.ndarray, old: np.ndarray) -> dict[int, int]:
    """New cluster -> old cluster, the one-to-one matching with the least total squared distance."""
    cost = ((new[:, None, :] - old[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


class PersonaModel:
    """k-means personas with generated names, profiles and a stable mapping across refits.

    ``k_range``: candidate numbers of personas; ``n_splits``: random half splits per k for the stability
    ARI; ``n_init``: k-means restarts per fit; ``sample_size``: at most this many customers are used to
    choose k and fit (all are assigned).
    """

    def __init__(self, *, k_range: tuple[int, int] = (6, 12), n_splits: int = 3, variance: float = 0.9,
                 max_components: int = 10, sample_size: int = 10_000, n_init: int = 10,
                 random_state: int = 0) -> None:
        self.k_range = k_range
        self.n_splits = n_splits
        self.variance = variance
        self.max_components = max_components
        self.sample_size = sample_size
        self.n_init = n_init
        self.random_state = random_state

    # ---- the reduced space ----------------------------------------------------------------------
    def _raw(self, F: pd.DataFrame) -> pd.DataFrame:
        """The persona features of ``F`` as floats, missing values (and absent columns) at the fit's medians."""
        raw = F.reindex(columns=self.features_).astype(float)
        return raw.fillna(pd.Series(self.medians_, index=self.features_))

    def _raw_matrix(self, F: pd.DataFrame) -> np.ndarray:
        """:meth:`_raw` as a float matrix, without pandas' per-column fill (3 ms for one scored customer)."""
        X = feature_matrix(F, self.features_, missing_as_nan=True)
        return np.where(np.isnan(X), np.asarray(self.medians_, dtype=float), X)

    def _space(self, raw: pd.DataFrame | np.ndarray) -> np.ndarray:
        X = raw if isinstance(raw, np.ndarray) else raw.to_numpy(dtype=float)
        X = np.where(self.log_columns_, np.log1p(np.maximum(X, 0.0)), X)
        return self.pca_.transform((X - self.center_) / self.scale_)

    def _fit_space(self, F: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        cols = [c for c in PERSONA_FEATURES if c in F.columns]
        raw = F[cols].astype(float)
        keep = [c for c in cols if raw[c].notna().any() and raw[c].nunique(dropna=True) > 1
                and raw[c].max() > NEEDS_MAX_ABOVE.get(c, -np.inf)]
        if len(keep) < 2:
            raise ValueError(f"personas: {len(keep)} varying persona features in {len(F)} rows; at least 2 needed")
        self.features_ = keep
        self.medians_ = raw[keep].median().to_numpy()
        raw = self._raw(F)
        X = raw.to_numpy(dtype=float)
        self.log_columns_ = (X.min(axis=0) >= 0) & (np.quantile(X, 0.99, axis=0) > 1.0)
        X = np.where(self.log_columns_, np.log1p(np.maximum(X, 0.0)), X)
        self.center_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Z = (X - self.center_) / self.scale_
        full = PCA(random_state=self.random_state).fit(Z)
        n = int(np.searchsorted(np.cumsum(full.explained_variance_ratio_), self.variance) + 1)
        self.pca_ = PCA(n_components=min(n, self.max_components, Z.shape[1]), random_state=self.random_state).fit(Z)
        return raw, self.pca_.transform(Z)

    # ---- choosing k -----------------------------------------------------------------------------
    def _kmeans(self, k: int, seed: int, n_init: int | None = None) -> KMeans:
        return KMeans(n_clusters=k, n_init=n_init or self.n_init, random_state=seed)

    def _stability(self, Z: np.ndarray, k: int, rng: np.random.Generator) -> dict:
        """Mean ARI (and share of identical labels after mapping) between fits on two random halves."""
        aris, agree = [], []
        for _ in range(self.n_splits):
            perm = rng.permutation(len(Z))
            a, b = perm[: len(Z) // 2], perm[len(Z) // 2 :]
            seed = int(rng.integers(2**31 - 1))
            ka, kb = self._kmeans(k, seed).fit(Z[a]), self._kmeans(k, seed + 1).fit(Z[b])
            mapping = match_centroids(kb.cluster_centers_, ka.cluster_centers_)
            la = ka.predict(Z)
            lb = np.vectorize(mapping.get)(kb.predict(Z))
            aris.append(adjusted_rand_score(la, lb))
            agree.append(float((la == lb).mean()))
        return {"ari": float(np.mean(aris)), "agreement": float(np.mean(agree))}

    def _choose_k(self, Z: np.ndarray, rng: np.random.Generator) -> None:
        sil_rows = rng.choice(len(Z), size=min(len(Z), 4000), replace=False)
        self.selection_ = {}
        for k in range(self.k_range[0], self.k_range[1] + 1):
            st = self._stability(Z, k, rng)
            labels = self._kmeans(k, self.random_state).fit_predict(Z)
            st["silhouette"] = float(silhouette_score(Z[sil_rows], labels[sil_rows]))
            self.selection_[k] = st
        stable = {k: s for k, s in self.selection_.items() if s["ari"] >= MIN_STABILITY}
        pool = stable or self.selection_
        key = "silhouette" if stable else "ari"
        self.k_ = max(pool, key=lambda k: (pool[k][key], -k))
        self.stability_ari_ = self.selection_[self.k_]["ari"]

    # ---- fit and assign -------------------------------------------------------------------------
    def fit(self, F: pd.DataFrame, previous: PersonaModel | None = None) -> PersonaModel:
        """Choose k, cluster the customers of ``F`` and name the personas (kept from ``previous`` when matched)."""
        rng = np.random.default_rng(self.random_state)
        if len(F) > self.sample_size:
            F = F.iloc[np.sort(rng.choice(len(F), size=self.sample_size, replace=False))]
        if len(F) < 20 * self.k_range[1]:
            raise ValueError(f"personas: {len(F)} customers; at least {20 * self.k_range[1]} are needed")
        raw, Z = self._fit_space(F)
        self._choose_k(Z, rng)
        self.kmeans_ = self._kmeans(self.k_, self.random_state, n_init=10).fit(Z)
        labels = self.kmeans_.labels_
        self.means_, self.profiles_ = profiles(raw, labels, self.k_)
        self.sizes_ = np.bincount(labels, minlength=self.k_)
        self.population_mean_ = raw.mean().to_numpy()
        self.population_std_ = raw.std(ddof=0).to_numpy()
        self.names_ = self._names(raw, previous)
        return self

    def _names(self, raw: pd.DataFrame, previous: PersonaModel | None) -> list[str]:
        """Generated names, with each cluster matched to an earlier persona taking that persona's name."""
        kept: dict[int, str] = {}
        if previous is not None:
            common = [c for c in self.features_ if c in previous.features_]
            if common:
                mean = raw[common].mean().to_numpy()
                sd = raw[common].std(ddof=0).to_numpy()
                sd = np.where(sd > 0, sd, 1.0)
                mine = (pd.DataFrame(self.means_, columns=self.features_)[common].to_numpy() - mean) / sd
                theirs = (pd.DataFrame(previous.means_, columns=previous.features_)[common].to_numpy() - mean) / sd
                kept = {new: previous.names_[old] for new, old in match_centroids(mine, theirs).items()}
        fresh = iter(generated_names(raw, self.means_[[c for c in range(self.k_) if c not in kept]],
                                     taken=set(kept.values())))
        return [kept[c] if c in kept else next(fresh) for c in range(self.k_)]

    def predict_index(self, F: pd.DataFrame) -> np.ndarray:
        """Persona index (0..k-1) of each row of ``F``."""
        if not len(F):
            return np.empty(0, dtype=np.int64)
        return self.kmeans_.predict(self._space(self._raw_matrix(F))).astype(np.int64)

    def predict(self, F: pd.DataFrame) -> np.ndarray:
        """Persona name of each row of ``F``."""
        return np.asarray(self.names_, dtype=object)[self.predict_index(F)]

    def describe(self) -> list[dict]:
        """Each persona's name, size in the fitted sample and profile (largest first)."""
        total = max(int(self.sizes_.sum()), 1)
        rows = [{"name": self.names_[c], "size": int(self.sizes_[c]), "share": float(self.sizes_[c] / total),
                 "profile": self.profiles_[c]} for c in range(self.k_)]
        return sorted(rows, key=lambda r: -r["size"])
