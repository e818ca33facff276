"""What ``engage train policy`` starts from: the action catalogue, the feature pipeline (and churn model), and
the champion policy it must beat.

* The catalogue: ``--catalogue FILE``; else the packaged one when it holds every logged action; else the
  logged actions themselves (:func:`features.contract.catalogue.catalogue_from_log`), said in the report.
* The pipeline and churn model: retention needs the churn champion (its churn probabilities drive the
  defense flag and it must be trained on this data: its recorded data fingerprint must match). A campaign
  objective uses the churn champion only when it was trained on this data, and otherwise fits a feature
  pipeline of its own and has no churn model.
* The champion policy: the registered decision system's champion, valued on the same held-out decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from features.contract.catalogue import Catalogue, catalogue_from_log, load_catalogue, logged_pairs
from features.contract.schema import Tables
from features.decision.config import PolicyConfig
from training.policy.offline import ChampionPolicy
from training.policy.rows import logged_action_ids, warn


@dataclass(frozen=True)
class CatalogueChoice:
    """The catalogue to train with, where it came from (``file``, ``packaged`` or ``log``) and any warnings."""

    catalogue: Catalogue
    source: str
    warnings: list[str] = field(default_factory=list)

    def report(self) -> dict:
        return {
            "source": self.source,
            "actions": {a.id: a.cost for a in self.catalogue.actions},
            "warnings": self.warnings,
        }


def require_outreach(tables: Tables, where: str) -> None:
    """A clear error when there is no logged outreach to learn a policy from (the table is optional in the contract)."""
    if tables.outreach is None or not len(tables.outreach):
        raise ValueError(
            f"{where}: no logged outreach (the outreach table is missing or empty); the next-best-action policy "
            "learns from logged contacts: add outreach.parquet or outreach.csv (see the data contract), or use "
            "`engage train churn` alone"
        )


def choose_catalogue(
    path: str | Path | None, tables: Tables, progress: Callable[[str], None] | None
) -> CatalogueChoice:
    """``--catalogue FILE`` if given; else the packaged catalogue, or the log's actions when it lacks some."""
    if path is not None:
        return CatalogueChoice(load_catalogue(path), "file")
    packaged = load_catalogue()
    outreach = tables.outreach
    if outreach is None or not len(outreach):
        return CatalogueChoice(packaged, "packaged")
    ids = set(logged_action_ids(outreach).tolist())
    missing = sorted(ids - set(packaged.ids))
    if not missing:
        return CatalogueChoice(packaged, "packaged")
    catalogue = catalogue_from_log(outreach)
    notes = [
        f"the log holds {len(missing)} action(s) the packaged catalogue lacks (e.g. {missing[:3]}): the catalogue is "
        f"the logged actions plus no contact: {', '.join(catalogue.ids)}"
    ]
    if logged_pairs(outreach)["cost"].isna().all():
        notes.append(
            "contact costs are 0: the log has no cost column and no --catalogue FILE gives them, so the objective "
            "and any budget treat contacts as free"
        )
    for note in notes:
        warn(note, progress)
    return CatalogueChoice(catalogue, "log", notes)


@dataclass(frozen=True)
class Foundation:
    """The feature pipeline the policy is trained on (``None``: fit one), the churn model the system carries
    (``None``: none), the churn champion's URI, and why (for the report)."""

    pipeline: object | None
    churn_model: object | None
    churn_uri: str | None
    note: str
    metadata: dict = field(default_factory=dict)


def _fingerprint(tables: Tables) -> str:
    from training.churn.tracking import data_fingerprint

    return str(data_fingerprint(tables, "", {})["sha256"])


def _champion_run_tags(config, name: str, alias: str | None = None) -> tuple[str, dict] | None:
    """The version and run tags of ``name``'s champion (or ``alias``), or None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=config.tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias or config.champion)
    except MlflowException:
        return None
    return str(mv.version), dict(client.get_run(mv.run_id).data.tags)


def foundation(config, pconfig: PolicyConfig, tables: Tables, data_name: str, alias: str | None = None) -> Foundation:
    """The pipeline and churn model to build on (see the module docstring); a clear error when retention has no
    usable churn champion. ``alias``: build on another alias of the churn model (``engage retrain`` builds on the
    challenger it has just trained, before anything is promoted)."""
    from features.contract.errors import ModelNotFoundError
    from training.registry import load_decision_system

    name = config.registered_models.get("churn", "engage-churn")
    alias = alias or config.champion
    uri = f"models:/{name}@{alias}"
    found = _champion_run_tags(config, name, alias)
    retention = not pconfig.objective_spec.campaign
    if found is None:
        if retention:
            raise ModelNotFoundError(f"no churn champion at {uri}: run `engage train churn --data {data_name}` first "
                             "(the retention objective needs it; a campaign objective such as --objective visit "
                             "does not)")  # fmt: skip
        return Foundation(None, None, None, "no churn champion: a feature pipeline fitted on this data, no churn model")
    version, tags = found
    mine, theirs = _fingerprint(tables), tags.get("data.sha256")
    if theirs != mine:
        trained_on = f"{tags.get('data.dataset', '?')!r} ({tags.get('data.customers', '?')} customers)"
        msg = (f"the churn champion {name} v{version} was trained on other data: {trained_on}, data fingerprint "
               f"{str(theirs)[:12]}; this folder's is {mine[:12]}")  # fmt: skip
        if retention:
            raise ValueError(f"{msg}. Run `engage train churn --data {data_name}` first, or use a campaign objective")
        return Foundation(None, None, None, f"{msg}: not used; a feature pipeline fitted on this data, no churn model")
    if alias != config.champion:  # pinned: the alias moves on, the system must name what it carries
        uri = f"models:/{name}/{version}"
    system = load_decision_system(uri)
    return Foundation(system.pipeline, system.churn_model, uri, f"churn {alias} {name} v{version} (same data)",
                      dict(system.metadata))  # fmt: skip


def champion_policy(config) -> ChampionPolicy | None:
    """The decision system champion's policy and version (``None`` when there is no champion)."""
    from training.registry import load_decision_system

    name = config.registered_models.get("system", "engage-decision-system")
    found = _champion_run_tags(config, name)
    if found is None:
        return None
    system = load_decision_system(f"models:/{name}/{found[0]}")
    return ChampionPolicy(getattr(system, "policy", None), f"{name} v{found[0]}")
