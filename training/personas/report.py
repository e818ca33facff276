"""Personas as marketers read them: profiles, how stable and (on simulated data) how telling they are, and
how churn, value and the policy's choices differ between them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

from features.contract.schema import Tables
from features.models.personas import PersonaModel


def truth_nmi(tables: Tables, ids: pd.Index, personas: np.ndarray, rng: np.random.Generator,
              n_random: int = 20) -> dict:
    """Simulated data: NMI of the personas with the true causal segments, and of random personas of the
    same sizes (the same labels shuffled) as the bar to beat."""
    truth = tables.truth
    if truth is None or "trait_segment" not in truth:
        return {}
    seg = truth.set_index(truth["customer_id"].astype(str))["trait_segment"].reindex(ids).astype(str).to_numpy()
    nmi = float(normalized_mutual_info_score(seg, personas))
    rand = [float(normalized_mutual_info_score(seg, rng.permutation(personas))) for _ in range(n_random)]
    return {"nmi_true_segments": nmi, "nmi_random_mean": float(np.mean(rand)), "nmi_random_max": float(np.max(rand)),
            "better_than_random": bool(nmi > np.max(rand))}


def persona_report(model: PersonaModel, F: pd.DataFrame, tables: Tables, cutoff, seed: int = 0) -> dict:
    """What ``engage personas`` prints: k and how it was chosen, stability, each persona and the truth check."""
    names = model.predict(F)
    counts = pd.Series(names).value_counts()
    personas = [{**row, "size": int(counts.get(row["name"], 0)), "share": float(counts.get(row["name"], 0) / len(F))}
                for row in model.describe()]
    return {
        "cutoff": str(cutoff),
        "customers": len(F),
        "k": model.k_,
        "stability_ari": model.stability_ari_,
        "selection": {str(k): v for k, v in model.selection_.items()},
        "features": list(model.features_),
        "personas": sorted(personas, key=lambda r: -r["size"]),
        "truth": truth_nmi(tables, pd.Index(F.index.astype(str)), names, np.random.default_rng(seed)),
    }


def by_persona(personas: np.ndarray, *, churn: np.ndarray, value: np.ndarray | None, decisions: pd.DataFrame,
               true_uplift: np.ndarray | None = None, true_churn: np.ndarray | None = None) -> dict:
    """Per persona: customers, mean churn probability, mean customer value, the policy's estimated (and,
    simulated, true) incremental value, contacts and the most chosen actions."""
    frame = pd.DataFrame({"persona": personas, "churn": churn,
                          "ev": decisions["nba_expected_incremental_value"].to_numpy(dtype=float),
                          "action": decisions["nba_action"].to_numpy(dtype=object)})
    if value is not None:
        frame["value"] = value
    if true_uplift is not None:
        frame["true_uplift"] = true_uplift
    if true_churn is not None:
        frame["true_churn"] = true_churn
    out = {}
    for name, g in frame.groupby("persona", sort=True):
        row = {"customers": len(g), "churn_probability": float(g["churn"].mean()),
               "estimated_incremental_value": float(g["ev"].sum()),
               "contacts": int((g["action"] != "no_contact").sum()),
               "actions": g["action"].value_counts().head(3).to_dict()}
        if "value" in g:
            row["customer_value_mean"] = float(g["value"].mean())
        if "true_uplift" in g:
            row["true_incremental_value"] = float(g["true_uplift"].sum())
        if "true_churn" in g:
            row["realised_churn_rate"] = float(g["true_churn"].mean())
        out[str(name)] = row
    return out
