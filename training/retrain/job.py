"""The steps of ``engage retrain``, in order, stopping at the first gate that fails.

validate -> (unchanged?) -> data gates -> drift -> train churn -> train policy -> store reference -> backtest
-> score (if promoted) -> promote -> publish. Every step is a module-level function taking small dataclasses,
so that the job reads as this list and a fault test can stop the real command at any step. Nothing before
:func:`promote_step` moves an alias or touches the published scores: the challengers are registered with the
``challenger`` alias and their promotion deferred to the backtest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.contract.schema import Tables
from training.retrain.backtest import Backtest
from training.retrain.decision import PolicyFigures, retrain_decision
from training.retrain.exits import FINISHED, REFUSED, REJECTED
from training.retrain.gates import Gate, data_gates
from training.retrain.reference import Champion, current_champion, load_reference, system_name
from training.retrain.settings import RetrainSettings

log = logging.getLogger("engage.retrain")

# scorer(data_folder, out_file, model_uri, cutoff) -> summary: the batch path of ``engage score``, given by the CLI
Scorer = Callable[[Path, Path, str, pd.Timestamp], dict]


@dataclass
class JobContext:
    """What the command read once: config, its path, the job's settings, the data folder, --as-of, the scorer."""

    config: object
    config_path: Path
    settings: RetrainSettings
    data: Path
    as_of: str | None
    scorer: Scorer
    steps: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """The data as the job may see it: cut at ``as_of``, its fingerprint, and engage's code version."""

    tables: Tables
    as_of: pd.Timestamp
    fingerprint: dict
    code: str

    @property
    def sha256(self) -> str:
        return str(self.fingerprint["sha256"])


@dataclass(frozen=True)
class Trained:
    """The registered challengers: churn and decision-system versions and the policy report."""

    churn_version: str
    system_version: str
    policy_report: dict


@dataclass
class Outcome:
    """How the job ended: decision, reason, exit status and everything the summary reports."""

    decision: str
    reason: str
    exit_status: int
    gates: list[Gate] = field(default_factory=list)
    drift: dict | None = None
    trained: Trained | None = None
    backtest: dict | None = None
    scores: dict | None = None
    warnings: list[str] = field(default_factory=list)


def _timed(ctx: JobContext, name: str, func, *args):
    t0 = time.perf_counter()
    log.info("retrain: %s", name)
    try:
        return func(*args)
    finally:
        ctx.steps[name] = round(time.perf_counter() - t0, 3)


def _retry(ctx: JobContext, func, what: str):
    from features.contract.errors import retry_while_busy

    return retry_while_busy(func, seconds=ctx.config.busy_retry_seconds, what=what, where=ctx.config.tracking_uri)


# ------------------------------------------------------------------------------------------------ steps


def validate_step(ctx: JobContext) -> Seen:
    """Read and validate the folder with the contract (bad input: exit 2), cut it at --as-of, fingerprint it."""
    from features.sources.io import read_tables
    from training.churn.tracking import data_fingerprint
    from training.retrain.snapshot import code_version, cut_tables, resolve_as_of

    tables = read_tables(ctx.data)
    as_of = resolve_as_of(tables, ctx.as_of)
    cut = cut_tables(tables, as_of)
    if not len(cut.touchpoints):
        raise ValueError(f"{ctx.data}: no touchpoint before --as-of {as_of}")
    return Seen(cut, as_of, data_fingerprint(cut, ctx.data.name, {"test": as_of.isoformat()}), code_version())


def gate_step(ctx: JobContext, seen: Seen, reference: dict | None) -> tuple[dict, list[Gate]]:
    """The data profile of the newest window, and the data gates against the champion's reference profile."""
    from training.retrain.profile import data_profile

    t = ctx.settings.thresholds
    profile = data_profile(seen.tables, seen.as_of, t.window_days)
    return profile, data_gates(profile, (reference or {}).get("profile"), t)


def drift_step(ctx: JobContext, seen: Seen, champion: Champion | None, reference: dict | None) -> dict | None:
    """Drift of the features and churn score from the champion's training reference, and the label rate."""
    from training.churn.commands import settings_for
    from training.registry import load_decision_system
    from training.retrain.backtest import system_scores
    from training.retrain.drift import drift_figures, label_rates

    rates = label_rates(seen.tables, seen.as_of, settings_for(ctx.config, ctx.settings.churn))
    if champion is None or not reference or "features" not in reference:
        return {"features": [], "score": None, "label_rate": rates, "note": "no champion reference to compare with"}
    system = _retry(ctx, lambda: load_decision_system(champion.uri), f"loading {champion.uri}")
    F, p = system_scores(system, seen.tables, seen.as_of)
    return {**drift_figures(reference, F, p), "label_rate": rates, "reference_version": champion.version}


def _defer(_challenger, _champion) -> tuple[bool, str]:
    return False, "deferred: engage retrain decides after its backtest on the same data"


def train_churn_step(ctx: JobContext, folder: Path) -> str:
    """Train and register the churn challenger (its promotion deferred); its version."""
    from training.churn.commands import train_churn_command

    report = train_churn_command(folder, ctx.config_path, register=True, overrides=ctx.settings.churn, decide=_defer)
    return str(report["mlflow"]["version"])


def train_policy_step(ctx: JobContext, folder: Path) -> dict:
    """Train the policy on the churn challenger and register the decision system (promotion deferred)."""
    from training.policy.commands import train_policy_command
    from training.policy.config import PolicyTrainConfig

    return train_policy_command(folder, ctx.config_path, register=True, churn_alias=ctx.config.challenger,
                                decide=_defer, train=PolicyTrainConfig(**ctx.settings.policy_train),
                                progress=log.info)


def reference_step(ctx: JobContext, seen: Seen, profile: dict, version: str) -> None:
    """Store the new version's reference (profile, feature and score sketches) and its input tags."""
    from mlflow import MlflowClient

    from training.registry import load_decision_system
    from training.retrain.backtest import system_scores
    from training.retrain.drift import reference_sketches
    from training.retrain.reference import AS_OF_TAG, CODE_TAG, DATA_TAG, store_reference

    name = system_name(ctx.config)
    system = load_decision_system(f"models:/{name}/{version}")
    F, p = system_scores(system, seen.tables, seen.as_of)
    run_id = MlflowClient(tracking_uri=ctx.config.tracking_uri).get_model_version(name, version).run_id
    tags = {DATA_TAG: seen.sha256, CODE_TAG: seen.code, AS_OF_TAG: seen.as_of.isoformat()}
    store_reference(ctx.config, version, run_id, {"profile": profile, **reference_sketches(F, p)}, tags)


def backtest_step(ctx: JobContext, seen: Seen, trained: Trained, champion: Champion | None) -> Backtest:
    """Challenger and champion churn metrics on the same labelled customers; the policy figures."""
    from training.churn.commands import settings_for
    from training.retrain.backtest import churn_backtest, labelled_rows

    rows, cutoff = labelled_rows(seen.tables, settings_for(ctx.config, ctx.settings.churn))
    uri = f"models:/{system_name(ctx.config)}/{trained.system_version}"
    return Backtest(
        cutoff, rows, churn_backtest(uri, seen.tables, rows, cutoff),
        churn_backtest(champion.uri, seen.tables, rows, cutoff) if champion else None,
        PolicyFigures.from_report(trained.policy_report),
    )


def score_step(ctx: JobContext, folder: Path, seen: Seen, version: str) -> Path:
    """Score the whole base with the challenger (the ``engage score`` path) into a staged file."""
    from training.retrain.publish import staged_path

    out = staged_path(ctx.settings.scores_dir, version, seen.as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a file a killed run left: scored again, from the same model and data
    import mlflow

    mlflow.set_tracking_uri(ctx.config.tracking_uri)
    ctx.scorer(folder, out, f"models:/{system_name(ctx.config)}/{version}", seen.as_of)
    return out


def promote_step(ctx: JobContext, seen: Seen, trained: Trained, bt: Backtest, champion: Champion | None) -> dict:
    """Compare-and-set under the promotion lock: decide against the champion now, tag, move the aliases."""
    from types import SimpleNamespace

    from training.registry import register_and_promote
    from training.retrain.backtest import churn_backtest

    measured = {champion.uri: bt.champion} if champion else {}

    def champion_metrics(uri: str) -> dict:  # the champion moved meanwhile: measured on the same rows too
        if uri not in measured:
            measured[uri] = churn_backtest(uri, seen.tables, bt.rows, bt.cutoff)
        return measured[uri]

    def decide(challenger: dict, champ: dict | None) -> tuple[bool, str]:
        return retrain_decision(challenger, champ, bt.policy, ctx.config.promotion, ctx.settings.thresholds)

    return register_and_promote(ctx.config, SimpleNamespace(registered_model_version=trained.system_version),
                                challenger_metrics=bt.challenger, champion_metrics_fn=champion_metrics,
                                model_key="system", decide=decide)


# ------------------------------------------------------------------------------------------------ the job


def _train(ctx: JobContext, seen: Seen, profile: dict) -> Trained:
    from training.policy.inputs import require_outreach
    from training.retrain.snapshot import snapshot_folder

    # after the data gates (a stale export is reported as stale), before anything is trained
    require_outreach(seen.tables, f"{ctx.data}: engage retrain trains churn and the policy")
    folder = snapshot_folder(ctx.settings.work_dir, seen.tables, seen.as_of, seen.sha256)
    churn_version = _timed(ctx, "train_churn", train_churn_step, ctx, folder)
    report = _timed(ctx, "train_policy", train_policy_step, ctx, folder)
    trained = Trained(churn_version, str(report["mlflow"]["version"]), report)
    _timed(ctx, "reference", reference_step, ctx, seen, profile, trained.system_version)
    return trained


def _decide_and_publish(ctx: JobContext, seen: Seen, trained: Trained, champion: Champion | None,
                        outcome: Outcome) -> Outcome:
    from training.retrain.publish import follow_with_churn, publish
    from training.retrain.snapshot import snapshot_folder

    bt = _timed(ctx, "backtest", backtest_step, ctx, seen, trained, champion)
    promote, _ = retrain_decision(bt.challenger, bt.champion, bt.policy, ctx.config.promotion,
                                  ctx.settings.thresholds)
    staged = None
    if promote:
        folder = snapshot_folder(ctx.settings.work_dir, seen.tables, seen.as_of, seen.sha256)
        staged = _timed(ctx, "score", score_step, ctx, folder, seen, trained.system_version)
    result = _timed(ctx, "promote", promote_step, ctx, seen, trained, bt, champion)
    decision = "promoted" if result["promoted"] else "kept"
    _timed(ctx, "follow", follow_with_churn, ctx.config, trained.churn_version,
           "promoted" if result["promoted"] else "rejected", result["reason"])
    if result["promoted"] and staged is not None:
        outcome.scores = {"staged": str(staged), "published": str(publish(staged))}
    outcome.decision, outcome.reason = decision, result["reason"]
    outcome.exit_status = FINISHED if result["promoted"] else REJECTED
    outcome.backtest = bt.summary()
    return outcome


def run_job(ctx: JobContext) -> tuple[Outcome, Seen | None, Champion | None]:
    """Run the steps in order; the outcome (decision, reason, exit status), what was seen, the champion before."""
    from training.retrain.publish import republish

    seen = _timed(ctx, "validate", validate_step, ctx)
    champion = _retry(ctx, lambda: current_champion(ctx.config), "reading the champion")
    if champion is not None and champion.same_inputs(seen.sha256, seen.code):
        healed = republish(ctx.settings.scores_dir, champion.version)
        outcome = Outcome("unchanged", f"champion v{champion.version} was trained on the same data (fingerprint "
                          f"{seen.sha256[:12]}) with the same code: nothing to do", FINISHED)
        if healed is not None:
            outcome.warnings.append(f"published the champion's scores a killed run had left staged: {healed}")
        return outcome, seen, champion
    reference = _retry(ctx, lambda: load_reference(ctx.config, champion), "reading the champion's reference")
    profile, gates = _timed(ctx, "gates", gate_step, ctx, seen, reference)
    failed = [g for g in gates if not g.passed]
    if failed:
        reason = "data gate refused: " + "; ".join(f"{g.name}: {g.message}" for g in failed)
        return Outcome("refused", reason, REFUSED, gates), seen, champion
    outcome = Outcome("kept", "", REJECTED, gates)
    outcome.drift = _timed(ctx, "drift", drift_step, ctx, seen, champion, reference)
    severe = [r["feature"] for r in outcome.drift["features"] if r["psi"] >= ctx.settings.thresholds.psi_severe]
    if severe:
        outcome.warnings.append(f"severe drift (PSI >= {ctx.settings.thresholds.psi_severe:g}) in {len(severe)} "
                                f"feature(s), e.g. {', '.join(severe[:5])}: retraining")
    outcome.trained = _train(ctx, seen, profile)
    return _decide_and_publish(ctx, seen, outcome.trained, champion, outcome), seen, champion
