"""The calibrated churn model with reason codes (pickled inside the registered decision system).

``ChurnModel`` = a LightGBM booster trained with early stopping on later (validation) cutoffs, a
calibrator (Platt or isotonic on the booster's raw score, chosen on the latest validation period) and
the readable names of its features. It learns from the features that vary over its training rows:
constant and all-missing ones (every event feature of a data set without touchpoints) are dropped at
``fit``, so the feature table stays the pipeline's contract and the model reads only what it uses.
Reason codes are LightGBM's own SHAP values (``pred_contrib``): per row, contributions plus the base value
equal the raw score, so they explain the model exactly; :mod:`features.models.reasons` states them with
the customer's own values (a customer attribute as one reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.models.lgbm import (
    booster_predict,
    column_positions,
    feature_matrix,
    informative_columns,
    lgbm_params,
    prediction_threads,
)
from features.models.reasons import ReasonLayout, top_contributions

DEFAULT_PARAMS: dict = lgbm_params(
    "binary",
    max_depth=-1,
    lambda_l2=1.0,
    num_threads=1,  # 2 threads spin-wait badly when the machine is shared; set it in params to change
    deterministic=True,
    force_row_wise=True,
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class ScoreCalibrator:
    """Maps a raw (log-odds) score to a probability: ``platt`` (logistic on the score) or ``isotonic``."""

    def __init__(self, method: str = "platt"):
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> ScoreCalibrator:
        raw = np.asarray(raw, float).reshape(-1)
        y = np.asarray(y, float).reshape(-1)
        if self.method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
            self.coef_, self.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        elif self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self.isotonic_ = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(raw, y)
        else:
            raise ValueError(f"calibration method {self.method!r}: use 'platt' or 'isotonic'")
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, float).reshape(-1)
        if self.method == "platt":
            return _sigmoid(self.coef_ * raw + self.intercept_)
        return self.isotonic_.predict(raw)


class ChurnModel:
    """Calibrated LightGBM churn classifier over a fixed, named feature list.

    Parameters
    ----------
    params : LightGBM parameters (merged over ``DEFAULT_PARAMS``).
    num_boost_round, early_stopping_rounds : boosting budget and patience on the validation set.
    class_weight : ``"balanced"`` (positive weight = negatives / positives, which the calibrator then
        undoes) or ``None``.
    calibration : ``"auto"`` (choose Platt or isotonic by Brier score on the calibration data with a
        2-fold split), ``"platt"``, ``"isotonic"`` or ``"none"``.
    seed : LightGBM seed (draw it from the run's ``numpy.random.Generator``).
    """

    def __init__(
        self,
        params: Mapping | None = None,
        *,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 50,
        class_weight: str | None = "balanced",
        calibration: str = "auto",
        seed: int = 0,
    ):
        self.params = dict(params or {})
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.class_weight = class_weight
        self.calibration = calibration
        self.seed = seed

    # ---- training -------------------------------------------------------------------------------
    def _matrix(self, F: pd.DataFrame) -> np.ndarray:
        """``F``'s model columns as a C-contiguous float64 matrix in the fitted column order."""
        names = self._feature_index()
        if not F.columns.equals(names) and not _any_present(F.columns, names):
            raise ValueError(f"feature table has none of the model's {len(names)} features")
        # Columns the scoring data lacks are missing values, which LightGBM routes like unseen NaNs.
        return feature_matrix(F, names, missing_as_nan=True)

    def _feature_index(self) -> pd.Index:
        # Cached lazily so that models pickled before this attribute existed still load and score.
        names = self.__dict__.get("feature_index_")
        if names is None:
            names = self.feature_index_ = pd.Index(self.feature_names_)
        return names

    def _select_features(self, F: pd.DataFrame) -> None:
        """Set ``feature_names_`` to ``F``'s columns that vary, ``dropped_features_`` to the others."""
        kept = informative_columns(F)
        if not kept:
            raise ValueError(
                f"feature table: all {F.shape[1]} features are constant or missing on the {len(F)} training rows;"
                " there is nothing to learn from"
            )
        self.feature_names_ = kept
        self.feature_index_ = pd.Index(kept)
        used = set(kept)
        self.dropped_features_ = [str(c) for c in F.columns if str(c) not in used]

    def _booster_predict(self, X: np.ndarray, **kwargs) -> np.ndarray:
        return booster_predict(
            self.booster_, X, num_iteration=self.best_iteration_, num_threads=prediction_threads(), **kwargs
        )

    def fit(
        self,
        F: pd.DataFrame,
        y,
        F_val: pd.DataFrame | None = None,
        y_val=None,
        *,
        F_cal: pd.DataFrame | None = None,
        y_cal=None,
        feature_labels: Mapping[str, str] | None = None,
        attributes: Mapping[str, tuple[str, str, object]] | None = None,
    ) -> ChurnModel:
        """Train on ``F, y``; stop early on ``F_val, y_val``; calibrate on ``F_cal, y_cal`` (default: val).

        Only ``F``'s columns that vary over its rows are used (``dropped_features_`` lists the others).
        ``attributes``: columns made from customer attributes -> ``(attribute, role, detail)`` (see
        :func:`features.builders.dictionary.attribute_origins`), for reason codes per attribute.
        """
        import lightgbm as lgb

        y = np.asarray(y, float)
        if len(np.unique(y)) < 2:
            raise ValueError(f"training labels: need both classes, got only {np.unique(y).tolist()}")
        self._select_features(F)
        self.feature_labels_ = {
            c: str((feature_labels or {}).get(c) or c.replace("_", " ")) for c in self.feature_names_
        }
        self.reasons_ = ReasonLayout(self.feature_names_, self.feature_labels_, attributes or {})
        weight = None
        if self.class_weight == "balanced":
            pos = y.mean()
            weight = np.where(y == 1, (1 - pos) / pos, 1.0)
        params = {**DEFAULT_PARAMS, **self.params, "seed": int(self.seed)}
        train = lgb.Dataset(self._matrix(F), y, weight=weight, feature_name=self.feature_names_, free_raw_data=True)
        callbacks = []
        valid_sets = []
        if F_val is not None:
            y_val = np.asarray(y_val, float)
            w_val = None
            if weight is not None:
                w_val = np.where(y_val == 1, (1 - y.mean()) / y.mean(), 1.0)
            valid_sets = [lgb.Dataset(self._matrix(F_val), y_val, weight=w_val, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        booster = lgb.train(
            params, train, num_boost_round=self.num_boost_round, valid_sets=valid_sets, callbacks=callbacks
        )
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        self.booster_ = booster
        if F_cal is None and F_val is not None:
            F_cal, y_cal = F_val, y_val
        self.calibrator_ = None
        self.calibration_method_ = "none"
        if F_cal is not None and self.calibration != "none":
            self.calibration_method_, self.calibration_scores_ = self._choose_calibration(
                self.raw_score(F_cal), np.asarray(y_cal, float)
            )
            self.calibrator_ = ScoreCalibrator(self.calibration_method_).fit(
                self.raw_score(F_cal), np.asarray(y_cal, float)
            )
        return self

    def _choose_calibration(self, raw: np.ndarray, y: np.ndarray) -> tuple[str, dict]:
        if self.calibration in ("platt", "isotonic"):
            return self.calibration, {}
        # Two folds, fixed split: each method is fit on one half and scored on the other.
        idx = np.arange(len(y))
        halves = (idx % 2 == 0, idx % 2 == 1)
        scores = {}
        for method in ("platt", "isotonic"):
            briers = []
            for a, b in (halves, halves[::-1]):
                if len(np.unique(y[a])) < 2:
                    continue
                p = ScoreCalibrator(method).fit(raw[a], y[a]).transform(raw[b])
                briers.append(float(np.mean((p - y[b]) ** 2)))
            scores[method] = float(np.mean(briers)) if briers else np.inf
        return min(scores, key=scores.get), scores

    # ---- scoring --------------------------------------------------------------------------------
    def raw_score(self, F: pd.DataFrame) -> np.ndarray:
        """The booster's log-odds score (before calibration)."""
        return self._booster_predict(self._matrix(F), raw_score=True)

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            return _sigmoid(raw)
        return np.clip(self.calibrator_.transform(raw), 0.0, 1.0)

    def predict_proba(self, F: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability per row of ``F`` (columns matched by name)."""
        return self._calibrate(self.raw_score(F))

    def contributions(self, F: pd.DataFrame) -> pd.DataFrame:
        """SHAP contributions per feature (log-odds) plus ``__base__``; each row sums to the raw score."""
        contrib = self._booster_predict(self._matrix(F), pred_contrib=True)
        return pd.DataFrame(contrib, index=F.index, columns=[*self.feature_names_, "__base__"])

    def _reasons(self, X: np.ndarray, top: int, rows: np.ndarray | None = None) -> list[list[dict]]:
        """Reason codes of the rows of ``X`` (only of the positions ``rows`` when given; others empty)."""
        if rows is not None:
            out: list[list[dict]] = [[] for _ in range(len(X))]
            for i, codes in zip(rows.tolist(), self._reasons(X[rows], top), strict=True):
                out[i] = codes
            return out
        if top <= 0 or not len(X):
            return [[] for _ in range(len(X))]
        contrib = self._booster_predict(X, pred_contrib=True)[:, :-1]
        layout = self.__dict__.get("reasons_")
        if layout is not None:
            return layout.codes(X, contrib, top)
        # A model fitted before reasons carried values: its reasons exactly as they were then.
        cand, vals = top_contributions(contrib, top)
        names = self.feature_names_
        labels = self.feature_labels_
        out = []
        for js, vs in zip(cand, vals, strict=True):
            row = []
            for j, v in zip(js, vs, strict=True):
                if v <= 0:
                    break
                name = names[j]
                row.append({"feature": name, "label": labels[name], "contribution": v})
            out.append(row)
        return out

    def reason_codes(self, F: pd.DataFrame, top: int = 3) -> list[list[dict]]:
        """The ``top`` reasons pushing each customer's churn score up: ``{feature, label, value, attribute,
        contribution}`` (models fitted before values were added: ``{feature, label, contribution}``)."""
        return self._reasons(self._matrix(F), top)

    def predict_with_reasons(
        self, F: pd.DataFrame, top: int = 3, *, min_probability: float | None = None
    ) -> tuple[np.ndarray, list[list[dict]]]:
        """``predict_proba(F)`` and ``reason_codes(F, top)`` sharing one conversion of ``F``.

        ``min_probability``: reason codes only for rows whose churn probability reaches it (the others
        get an empty list): SHAP values cost far more per row than the probability.
        """
        X = self._matrix(F)
        p = self._calibrate(self._booster_predict(X, raw_score=True)) if len(X) else np.empty(0)
        rows = None if min_probability is None else np.flatnonzero(p >= min_probability)
        return p, self._reasons(X, top, rows)

    def importance(self) -> pd.DataFrame:
        """Global importance: total gain and split count per feature, highest gain first."""
        gain = self.booster_.feature_importance("gain", iteration=self.best_iteration_)
        split = self.booster_.feature_importance("split", iteration=self.best_iteration_)
        frame = pd.DataFrame(
            {
                "feature": self.feature_names_,
                "label": [self.feature_labels_[c] for c in self.feature_names_],
                "gain": gain,
                "splits": split,
            }
        )
        frame["gain_share"] = frame["gain"] / max(frame["gain"].sum(), 1e-12)
        return frame.sort_values("gain", ascending=False, ignore_index=True)


def _any_present(columns: pd.Index, names: pd.Index) -> bool:
    """Whether ``columns`` holds any of ``names`` (by cached positions: ``Index.isin`` on string indexes costs
    about 2 ms for 200 names, more than scoring one customer)."""
    pos = column_positions(columns, names)
    return bool(names.isin(columns).any()) if pos is None else bool((pos >= 0).any())


def feature_labels_from(dictionary: pd.DataFrame | Mapping[str, str] | None, names: Sequence[str]) -> dict[str, str]:
    """Readable labels for ``names`` from a feature dictionary (``name``/``meaning`` columns) or a mapping."""
    if dictionary is None:
        return {n: n.replace("_", " ") for n in names}
    if isinstance(dictionary, pd.DataFrame):
        mapping = dict(zip(dictionary["name"].astype(str), dictionary["meaning"].astype(str), strict=True))
    else:
        mapping = dict(dictionary)
    return {n: mapping.get(n) or n.replace("_", " ") for n in names}


class LinearScore:
    """Standardised L2 logistic regression on a feature matrix plus ``log1p`` of its non-negative count-like columns.

    The log terms matter on subscription data: churn hazard falls roughly with the log of tenure and of
    spend, which a linear term alone cannot bend. Kept as plain arrays so that
    scores and per-feature contributions are numpy arithmetic; missing values take the training median.
    """

    def __init__(self, C: float = 0.1):
        self.C = C

    def _design(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)[:, self.columns_]
        X = np.where(np.isnan(X), self.median_, X)
        Z = np.hstack([X, np.log1p(np.clip(X[:, self.log_columns_], 0, None))])
        return (Z - self.mean_) / self.scale_

    def fit(self, X: np.ndarray, y, weight: np.ndarray | None = None) -> LinearScore:
        """Fit on the float matrix ``X`` (rows × features) and binary labels ``y``."""
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        X = np.asarray(X, float)
        self.n_features_ = X.shape[1]
        median = np.nanmedian(np.where(np.isnan(X).all(axis=0), 0.0, X), axis=0)
        filled = np.where(np.isnan(X), median, X)
        # constant columns carry nothing and (pipelines emit many for snapshot data) only slow the solver
        n_values = np.array([len(np.unique(c)) for c in filled.T])
        self.columns_ = np.flatnonzero(n_values > 1)
        self.median_ = median[self.columns_]
        # log terms only where a curve can exist: non-negative columns with more than two values
        kept = filled[:, self.columns_]
        self.log_columns_ = np.flatnonzero((kept.min(axis=0) >= 0) & (n_values[self.columns_] > 2))
        self.mean_, self.scale_ = 0.0, 1.0  # identity, so that _design returns the unscaled terms once
        Z = self._design(X)
        self.mean_ = Z.mean(axis=0)
        self.scale_ = np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0)
        lr = LogisticRegression(C=self.C, max_iter=5000)
        # one BLAS thread: on a small matrix more threads mostly spin-wait (slower on a shared machine)
        with threadpool_limits(1):
            lr.fit((Z - self.mean_) / self.scale_, np.asarray(y, int), sample_weight=weight)
        self.coef_, self.intercept_ = lr.coef_[0], float(lr.intercept_[0])
        return self

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions (log term folded into its source column) plus the base last."""
        terms = self._design(X) * self.coef_
        k = len(self.columns_)
        out = np.zeros((len(X), self.n_features_ + 1))
        out[:, self.columns_] = terms[:, :k]
        out[:, self.columns_[self.log_columns_]] += terms[:, k:]
        out[:, -1] = self.intercept_
        return out

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Log-odds score per row of ``X``."""
        return self._design(X) @ self.coef_ + self.intercept_


class BlendedChurnModel(ChurnModel):
    """``ChurnModel`` whose raw score is ``weight`` × LightGBM + (1 − ``weight``) × :class:`LinearScore` (log-odds).

    Blending in log-odds space keeps everything downstream exact: calibration sees the blended score and
    reason codes are the same blend of SHAP values and linear contributions, so each row still sums to the
    raw score. ``weight=1`` is the plain LightGBM model. ``importance()`` covers the LightGBM part only.
    """

    def __init__(self, params: Mapping | None = None, *, weight: float = 0.5, linear_c: float = 0.1, **kwargs):
        super().__init__(params, **kwargs)
        self.weight = float(weight)
        self.linear_c = float(linear_c)

    def fit(self, F: pd.DataFrame, y, F_val=None, y_val=None, **kwargs) -> BlendedChurnModel:
        """Fit the linear part on ``F, y`` first (the calibrator inside ``ChurnModel.fit`` needs it), then LightGBM."""
        y_arr = np.asarray(y, float)
        self._select_features(F)  # the linear part reads the same columns as the booster
        sample_weight = None
        if self.class_weight == "balanced":  # the same class weights as the LightGBM part
            pos = y_arr.mean()
            sample_weight = np.where(y_arr == 1, (1 - pos) / pos, 1.0)
        self.linear_ = LinearScore(self.linear_c).fit(feature_matrix(F, self.feature_names_), y_arr, sample_weight)
        super().fit(F, y, F_val, y_val, **kwargs)
        return self

    def _booster_predict(self, X: np.ndarray, **kwargs) -> np.ndarray:
        w = self.weight
        if kwargs.get("pred_contrib"):
            return w * super()._booster_predict(X, **kwargs) + (1 - w) * self.linear_.contributions(X)
        raw = w * super()._booster_predict(X, **{**kwargs, "raw_score": True}) + (1 - w) * self.linear_.raw_score(X)
        return raw if kwargs.get("raw_score") else _sigmoid(raw)
