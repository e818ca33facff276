"""Tables put in a given customer order, for exact comparisons between flat and partitioned folders (a
partitioned folder reads back with its customers in partition order)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract.schema import TABLES, Tables


def in_customer_order(tables: Tables, ids) -> Tables:
    """``tables`` with customers in the order of ``ids`` (the same set of ids), each customer's rows in their
    order, and event ids as categoricals over ``ids``."""
    ids = pd.Index(pd.Series(ids).astype("str"), dtype="str", name=None)
    pos = ids.get_indexer(pd.Index(tables.customers["customer_id"].astype("str")))
    assert (pos >= 0).all() and len(ids) == len(pos), "the same customers in another order"
    out = {"customers": tables.customers.take(np.argsort(pos, kind="stable")).reset_index(drop=True)}
    for name in TABLES[1:]:
        df = getattr(tables, name)
        if df is None:
            out[name] = None
            continue
        col = df["customer_id"]
        if isinstance(col.dtype, pd.CategoricalDtype):
            new = pos[col.cat.codes.to_numpy()]
            order = np.argsort(new, kind="stable")
            df = df.take(order).reset_index(drop=True)
            df["customer_id"] = pd.Categorical.from_codes(new[order], categories=ids)
        else:
            new = ids.get_indexer(pd.Index(col.astype("str")))
            df = df.take(np.argsort(new, kind="stable")).reset_index(drop=True)
        out[name] = df
    return Tables(**out)
