"""Static customer attributes (extra columns of ``customers``), encoded with feature-engine.

``fit`` runs a feature-engine pipeline on the training customers: missing categories become
``missing`` (CategoricalImputer), rare categories are grouped (RareLabelEncoder), the rest one-hot
encoded (OneHotEncoder); numeric attributes get a missing indicator (AddMissingIndicator) and median
imputation (MeanMedianImputer). ``transform`` applies the dictionaries those transformers learned
with plain numpy, because the live service encodes one customer per request and feature-engine's
per-call checks would dominate that request; a test checks both give the same table.

Column names are ``<prefix><attribute>`` for a numeric, boolean or date attribute, ``<prefix><attribute>_<value>``
for a category and ``<prefix><attribute>_na`` for a missing-value indicator, with the attribute and the value
made safe by :mod:`features.builders.names` (any character may occur in the data; LightGBM and JSON
consumers need plain names) and made unique. They are fixed at ``fit``; :meth:`StaticAttributesBuilder.origins`
maps each back to the attribute and the original value, which the feature dictionary and the reason codes show.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from feature_engine.encoding import OneHotEncoder, RareLabelEncoder
from feature_engine.imputation import AddMissingIndicator, CategoricalImputer, MeanMedianImputer
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from features.builders.base import to_frame
from features.builders.event_source import to_cutoff_ns
from features.builders.names import safe_part, unique_names
from features.contract.schema import CUSTOMER_COLUMNS, DAY_NS, Tables

MISSING = "missing"
RARE = "rare"


def _kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool"
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "numeric"
    return "categorical"


class StaticAttributesBuilder(BaseEstimator):
    """Pass the ``customers`` table's extra columns through, encoded for models.

    Parameters
    ----------
    rare_tol : categories rarer than this share of training customers are grouped as ``rare``.
    max_categories : at most this many (most frequent) categories per attribute get a column.
    prefix : prefix of every output column (keeps attribute names apart from behavioural features).
    """

    family = "static"
    seed_idea = "customer attributes passed through with proper encoding"
    int_columns: frozenset[str] = frozenset()

    def __init__(self, rare_tol: float = 0.01, max_categories: int = 20, prefix: str = "attr_"):
        self.rare_tol = rare_tol
        self.max_categories = max_categories
        self.prefix = prefix

    def _attributes(self, customers: pd.DataFrame) -> dict[str, str]:
        return {c: _kind(customers[c]) for c in customers.columns if c not in CUSTOMER_COLUMNS}

    def _frame(self, customers: pd.DataFrame, kinds: dict[str, str], cutoff_ns: int) -> pd.DataFrame:
        """Attributes as plain numeric / object columns (dates as days before the cutoff)."""
        return pd.DataFrame(self._columns(customers, kinds, cutoff_ns), index=customers.index)

    def _columns(self, customers: pd.DataFrame, kinds: dict[str, str], cutoff_ns: int) -> dict[str, np.ndarray]:
        """The attributes as numpy arrays (float64, or object for categories)."""
        out = {}
        for c, k in kinds.items():
            if c not in customers.columns:
                raise ValueError(f"customers.{c}: attribute seen in fit is missing at transform")
            s = customers[c]
            if k == "bool":
                out[c] = s.astype("float64").to_numpy()
            elif k == "datetime":
                ns = pd.to_datetime(s, utc=True).array.as_unit("ns").asi8.astype(np.float64)
                ns[pd.isna(s).to_numpy()] = np.nan
                out[c] = (cutoff_ns - ns) / DAY_NS
            elif k == "numeric":
                out[c] = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
            else:
                out[c] = s.to_numpy(dtype=object, na_value=None)  # missing (NaN, None, NA) -> None
        return out

    def fit(self, X: Tables, y=None, *, cutoff) -> StaticAttributesBuilder:
        """Learn imputation values, frequent categories and one-hot columns on the training customers."""
        if not 0 <= self.rare_tol < 1:
            raise ValueError(f"rare_tol must be in [0, 1), got {self.rare_tol!r}")
        kinds = self._attributes(X.customers)
        df = self._frame(X.customers, kinds, to_cutoff_ns(cutoff))
        cats = [c for c, k in kinds.items() if k == "categorical"]
        nums = [c for c, k in kinds.items() if k != "categorical"]
        with_na = [c for c in nums if df[c].isna().any()]
        steps = []
        if cats:
            df[cats] = df[cats].astype(object)
            steps += [
                ("impute_cat", CategoricalImputer(fill_value=MISSING, variables=cats, ignore_format=True)),
                (
                    "rare",
                    RareLabelEncoder(
                        tol=self.rare_tol,
                        n_categories=1,
                        replace_with=RARE,
                        variables=cats,
                        ignore_format=True,
                    ),
                ),
                (
                    "onehot",
                    OneHotEncoder(top_categories=self.max_categories, variables=cats, ignore_format=True),
                ),
            ]
        if with_na:
            steps += [
                ("indicator", AddMissingIndicator(variables=with_na)),
                ("impute_num", MeanMedianImputer(imputation_method="median", variables=with_na)),
            ]
        self.kinds_ = kinds
        with warnings.catch_warnings():
            # feature-engine 1.9 calls DataFrame.drop(inplace=True), deprecated in pandas 3.1.
            warnings.filterwarnings("ignore", message="The inplace keyword")
            self.encoder_ = Pipeline(steps).fit(df) if steps and len(df) else None
        self.categories_ = {}
        self.rare_kept_ = {}
        self.medians_ = {}
        if self.encoder_ is not None:
            named = self.encoder_.named_steps
            if cats:
                self.rare_kept_ = {c: list(named["rare"].encoder_dict_[c]) for c in cats}
                self.categories_ = {c: list(named["onehot"].encoder_dict_[c]) for c in cats}
            if with_na:
                self.medians_ = {c: float(named["impute_num"].imputer_dict_[c]) for c in with_na}
        # Median of an all-missing column is NaN: fall back to 0 so the output stays NaN-free.
        self.medians_ = {c: (0.0 if np.isnan(v) else v) for c, v in self.medians_.items()}
        sources = self._sources(nums, cats)
        # One stem per attribute (two attributes may read the same once made safe), then whole names unique.
        stem = dict(zip(kinds, unique_names(f"{self.prefix}{safe_part(c)}" for c in kinds), strict=True))
        names = unique_names("_".join([stem[parts[0]], *map(safe_part, parts[1:])]) for parts, _ in sources)
        self.origins_ = dict(zip(names, (o for _, o in sources), strict=True))
        self.feature_names_out_ = np.array(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def _sources(self, nums: list[str], cats: list[str]) -> list[tuple[tuple, tuple]]:
        """Per output column, in output order: the parts its name is made of, and its origin (see :meth:`origins`)."""
        cols: list[tuple[tuple, tuple]] = [((c,), (c, "value", self.kinds_[c])) for c in nums]
        for c in cats:
            cols += [((c, v), (c, "category", v)) for v in self.categories_.get(c, [])]
        cols += [((c, "na"), (c, "missing", None)) for c in self.medians_]
        return cols

    def origins(self) -> dict[str, tuple[str, str, object]]:
        """Each output column's source: ``(attribute, role, detail)``, in output order.

        ``role`` is ``"value"`` (detail: the attribute's kind, ``numeric``, ``bool`` or ``datetime``),
        ``"category"`` (detail: the original category value, or ``missing``/``rare`` for the groups the
        encoder made) or ``"missing"`` (the attribute's missing-value indicator; detail ``None``).
        """
        check_is_fitted(self, "feature_names_out_")
        found = self.__dict__.get("origins_")
        if found is None:  # fitted before origins were recorded (a pickled model): the same columns in order
            kinds = self.kinds_
            sources = self._sources([c for c, k in kinds.items() if k != "categorical"],
                                    [c for c, k in kinds.items() if k == "categorical"])
            found = dict(zip(self.feature_names_out_, (o for _, o in sources), strict=True))
        return dict(found)

    def _block(self, customers: pd.DataFrame, cutoff_ns: int) -> np.ndarray:
        kinds = self.kinds_
        df = self._columns(customers, kinds, cutoff_ns)
        cols = []
        nums = [c for c, k in kinds.items() if k != "categorical"]
        for c in nums:
            v = df[c]
            fill = self.medians_.get(c, 0.0)
            cols.append(np.where(np.isnan(v), fill, v))
        for c, k in kinds.items():
            if k != "categorical" or not self.categories_.get(c):
                continue
            # Map each distinct value once (missing -> "missing", not kept -> "rare"), then every row.
            codes, uniq = pd.factorize(df[c], use_na_sentinel=True)
            kept = set(self.rare_kept_.get(c, []))
            pos = {v: i for i, v in enumerate(self.categories_[c])}

            values = [str(u) for u in uniq] + [MISSING]
            lut = np.array([pos.get(v if not kept or v in kept else RARE, -1) for v in values], dtype=np.int64)
            rows = lut[codes]
            onehot = np.zeros((len(rows), len(pos)))
            ok = rows >= 0
            onehot[np.flatnonzero(ok), rows[ok]] = 1.0
            cols.extend(onehot.T)
        for c in self.medians_:
            cols.append(np.isnan(df[c]).astype(np.float64))
        if not cols:
            return np.zeros((len(customers), 0))
        return np.column_stack(cols)

    def transform(self, X: Tables, *, cutoff) -> pd.DataFrame:
        """One row per customer: encoded attributes, fixed columns whatever categories occur."""
        check_is_fitted(self, "feature_names_out_")
        block = self._block(X.customers, to_cutoff_ns(cutoff))
        return to_frame(block, X.customers["customer_id"], list(self.feature_names_out_))

    def fit_transform(self, X: Tables, y=None, *, cutoff) -> pd.DataFrame:
        return self.fit(X, y, cutoff=cutoff).transform(X, cutoff=cutoff)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def describe(self) -> list[tuple[str, str]]:
        """Column meanings; before fitting, one generic row (columns depend on the training data)."""
        if not hasattr(self, "feature_names_out_"):
            return [
                (
                    f"{self.prefix}*",
                    "static customer attributes: numeric as is (dates as days before the "
                    "cutoff, median-imputed with a _na indicator), categories one-hot with rare ones grouped",
                )
            ]
        how = {"bool": "0/1", "datetime": "days before the cutoff", "numeric": "as is"}
        out = []
        for name, (c, role, detail) in self.origins().items():
            if role == "category":
                out.append((name, f"1 = attribute {c} is {detail!r}"))
            elif role == "value":
                out.append((name, f"attribute {c} ({how[detail]}; missing -> training median)"))
            else:
                out.append((name, f"1 = attribute {c} was missing"))
        return out

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "feature_names_out_")
