"""``engage bench sample-loss``: what training on a customer sample costs, against the sample's size.

On a simulated partitioned folder, for each size: the sample ``engage train churn|policy --engine dask`` would
draw (seed 0, nested), the churn model and the policy trained on it as those commands train them (no MLflow),
then both judged on the same held-out customers (a disjoint draw of another seed): the churn AUC at the test
cutoff, and the policy's true value and captured uplift (share of the oracle's) from the simulator's truth at
the evaluation cutoff, beside the DR value the policy's own report estimates on its held-out decisions.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.engine.options import EngineSettings
from training.engine.sampled_read import SampleRequest, sampled_tables

EVAL_SEED = 99  # the held-out customers: another seed's draw, minus any sampled for training


def _held_out(folder: Path, eval_customers: int, train_ids: set[str], base: int, client):
    """About ``eval_customers`` customers of another seed's draw that no training sample holds."""
    drawn = min(base, round(eval_customers / max(1e-3, 1 - len(train_ids) / base)))
    tables = sampled_tables(folder, SampleRequest(EngineSettings("dask"), "churn", drawn, EVAL_SEED), 10**13,
                            client)
    ids = tables.customers["customer_id"].astype(str)
    return tables.subset(ids[~ids.isin(train_ids)])


def _churn_auc(system, tables, settings) -> dict:
    from training.churn.experiments import evaluation_labels
    from training.metrics import churn_metrics

    labels, test = evaluation_labels(tables, settings, None)
    scored = system.score(tables, test).set_index("customer_id")
    p = scored["churn_probability"].reindex(labels["customer_id"].astype(str)).to_numpy()
    m = churn_metrics(labels["label"].astype(int).to_numpy(), p)
    return {"auc": round(m["auc"], 4), "brier": round(m["brier"], 4), "rows": len(labels)}


def _policy_truth(model, churn_system, tables, pconfig, cat, seed: int, n_boot: int) -> dict:
    from features.contract.cutoffs import evaluation_cutoff
    from training.policy.evaluate import decide_at_cutoff
    from training.policy.truth import truth_comparison

    cutoff = evaluation_cutoff(tables)
    F = churn_system.features(tables, cutoff).loc[tables.customers["customer_id"].astype(str)]
    churn_p = churn_system.churn_model.predict_proba(F)
    config = replace(pconfig, min_incremental_value=max(pconfig.min_incremental_value,
                                                        model.config.min_incremental_value))
    d = decide_at_cutoff(model, tables, cutoff, config, pipeline=churn_system.pipeline, churn_probability=churn_p)
    truth = truth_comparison(d.decided, tables.truth, cat, np.random.default_rng(seed), n_boot)
    return {"true_value_per_customer": round(truth["policy_value"] / len(tables.customers), 4),
            "captured_uplift_ratio": truth["captured_uplift_ratio"],
            "contacts": int((d.decided.choice != 0).sum())}


def bench_sample_loss(folder: Path, sizes: list[int], *, eval_customers: int = 10_000, n_boot: int = 100,
                      progress=None) -> dict:
    """Train churn and the policy on each sample size of ``folder`` and judge them on held-out customers."""
    import os

    from features.contract.catalogue import load_catalogue
    from training.churn.commands import fit_for_tables
    from training.churn.split import ChurnSettings
    from training.engine.options import dask_client
    from training.engine.sampled_read import customer_count
    from training.policy.commands import policy_settings
    from training.policy.config import PolicyTrainConfig
    from training.policy.train import train_and_evaluate
    from training.registry import DEFAULT_CONFIG, load_config

    say = progress or (lambda _msg: None)
    folder = Path(folder)
    config = load_config(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None
    settings = ChurnSettings.from_dict(config.churn if config is not None else {})
    pconfig, cat, train = policy_settings(), load_catalogue(), PolicyTrainConfig(n_boot=n_boot)
    base = customer_count(folder)
    rows: list[dict] = []
    with dask_client(EngineSettings("dask")) as client:
        largest = sampled_tables(folder, SampleRequest(EngineSettings("dask"), "churn", max(sizes), 0), 10**13,
                                 client)
        held = _held_out(folder, eval_customers, set(largest.customers["customer_id"].astype(str)), base,
                         client)
        del largest
        say(f"held out: {len(held.customers):,} customers")
        for n in sorted(sizes):
            start = time.perf_counter()
            tables = sampled_tables(folder, SampleRequest(EngineSettings("dask"), "churn", n, 0), 10**13, client)
            say(f"sample of {n:,}: {len(tables.customers):,} customers; churn")
            churn = fit_for_tables(tables, settings, np.random.default_rng(settings.seed), dataset="sample")
            say(f"sample of {n:,}: policy")
            model, report = train_and_evaluate(tables, cat, pconfig, train, pipeline=churn.system.pipeline,
                                               scenarios={"configured": pconfig})
            learned = report["off_policy"]["policies"]["learned"]
            rows.append({
                "sample_customers": len(tables.customers), "fraction": tables.meta["sample"]["fraction"],
                "churn_own_test_auc": round(churn.report["auc"], 4),
                "churn_held_out": _churn_auc(churn.system, held, settings),
                "policy_chosen": report.get("chosen_policy"),
                "policy_dr_incremental": learned["dr_incremental"],
                "policy_dr_heldout_rows": report["off_policy"]["rows"],
                "policy_held_out_truth": _policy_truth(model, churn.system, held, pconfig, cat, 0, n_boot),
                "seconds": round(time.perf_counter() - start, 1),
            })
            say(f"sample of {n:,}: {rows[-1]}")
    return {"data": str(folder), "base_customers": base, "held_out_customers": len(held.customers),
            "sample_seed": 0, "held_out_seed": EVAL_SEED, "rows": rows, "load_average": list(os.getloadavg())}
