"""``engage train value``: choose, fit and judge the customer-value model on a data folder; log it to MLflow.

The run holds the settings, the headline figures of the chosen model and of the textbook BG/NBD +
Gamma-Gamma, the report, the predicted-against-realised chart by decile and the deployable model
(``value_model.pkl``, fitted at the end of the data with the chosen blend).
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from training.report import write_json
from training.value.evaluate import HEADLINE, ValueSettings, evaluate_value
from training.value.metrics import decile_plot


def _flat_metrics(report: dict) -> dict[str, float]:
    out = {k: float(report[k]) for k in HEADLINE}
    out.update({f"baseline_bgnbd_gg_{k}": float(report["baselines"]["bgnbd_gamma_gamma"][k]) for k in HEADLINE})
    for name, m in report["candidates"].items():
        out.update({f"{name}_{k}": float(m[k]) for k in HEADLINE})
    out.update({f"truth_{k}": float(v) for k, v in report.get("truth", {}).items() if k.startswith("spearman")})
    return {k: v for k, v in out.items() if v == v}


def _log_run(report: dict, model, settings: ValueSettings) -> None:
    """Settings, figures, the report, the decile chart and the deployable model into the active run."""
    import mlflow

    mlflow.log_params({**{f"value.{k}": v for k, v in asdict(settings).items()},
                       "value.chosen": report["chosen"], "value.weight_lgbm": report["blend"]["weight_lgbm"],
                       "value.horizon_used": report["horizon_days"]})
    mlflow.log_metrics(_flat_metrics(report))
    with tempfile.TemporaryDirectory() as tmp:
        write_json(Path(tmp) / "value_report.json", report)
        decile_plot({report["chosen"]: report["calibration_by_decile"],
                     "BG/NBD+GG": report["baselines"]["bgnbd_gamma_gamma"]["calibration_by_decile"]},
                    Path(tmp) / "value_by_decile.png",
                    f"customer value by predicted decile ({report['horizon_days']} days, at "
                    f"{report['schedule']['evaluation_cutoff']})")
        with open(Path(tmp) / "value_model.pkl", "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        mlflow.log_artifacts(tmp)


def train_value_command(data, config_path=None, report_path=None, *, horizon_days: int | None = None,
                        log: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """``engage train value --data DIR [--horizon-days N] [--report F.json]``: the report as a dict."""
    from features.sources.io import read_tables

    tables = read_tables(Path(data))
    settings = ValueSettings(horizon_days=horizon_days)
    model, report = evaluate_value(tables, settings, progress=progress)
    if log:
        import mlflow

        from training.registry import experiment_id, load_config

        config = load_config(config_path)
        mlflow.set_tracking_uri(config.tracking_uri)
        with mlflow.start_run(experiment_id=experiment_id(config, "value"), run_name="value") as run:
            _log_run(report, model, settings)
            report["mlflow_run_id"] = run.info.run_id
    if report_path is not None:
        write_json(report_path, report)
    return report
