"""The Dask side of ``engage features`` and ``engage score``: the cluster, the model the workers load, the
cutoff over all partitions, then :mod:`training.engine.features` or :mod:`training.engine.scoring`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from features.contract.cutoffs import SOURCES
from features.sources.partition_checks import check_across_partitions
from training.engine.options import EngineSettings, dask_client
from training.engine.parts import partitioned_cutoff, require_partitioned


def model_folder(model_uri: str | None, config: Path | None, download: Callable[[str, Path | None], Path]) -> Path:
    """Where the workers load the decision system from: a local model folder or file as given, or a registered
    version (the champion of ``--config`` by default) downloaded once to ``work/models/NAME/VERSION`` and
    checked against its recorded digest. On a cluster of several machines this path must be on storage every
    worker sees. ``download(uri, config)`` fetches a registered version (the CLI's, shared with engage serve)."""
    from training.cli_common import is_registry_uri

    if model_uri is not None and model_uri != "champion" and not is_registry_uri(model_uri):
        path = Path(model_uri)
        if not path.exists():
            raise FileNotFoundError(f"--model-uri {path}: no model folder or file there")
        return path.resolve()
    if model_uri is not None and model_uri != "champion":
        if not model_uri.startswith("models:/"):
            raise ValueError(f"--model-uri {model_uri}: with --engine dask give a registered model "
                             "(models:/NAME@ALIAS or models:/NAME/VERSION) or a local model folder or file")
        return download(model_uri, config).resolve()
    from serving.loading import ModelSource, source_marker

    champion = source_marker(ModelSource("mlflow", str(config or Path("mlflow.yaml"))))
    return download(f"models:/{champion}", config).resolve()


def features_command(settings: EngineSettings, data: Path, out: Path, cutoff, *, pipeline=None,
                     overwrite: bool = False, bars=None) -> dict[str, Any]:
    """``engage features --engine dask``: the summary the command prints (without the pipeline entry)."""
    from training.engine.features import dask_features

    require_partitioned(data)
    with dask_client(settings) as client:  # unreachable --scheduler: ConnectionError, exit 2
        if bars:
            bars.note(f"choosing the cutoff of {data}")
        check_across_partitions(data, client)
        choice = partitioned_cutoff(client, data, cutoff)
        step = bars.step("building features, partition by partition") if bars else None
        summary = dask_features(client, data, out, choice.at, pipeline=pipeline, overwrite=overwrite,
                                progress=step)
    summary.update(cutoff=choice.at.isoformat(), cutoff_source=SOURCES[choice.source], engine="dask")
    return summary


def score_command(settings: EngineSettings, data: Path, out: Path, cutoff, *, model_uri: str | None,
                  config: Path | None, download: Callable[[str, Path | None], Path],
                  defense_out: Path | None = None, decision_log: Path | None = None,
                  overwrite: bool = False, bars=None) -> dict[str, Any]:
    """``engage score --engine dask --data DIR``: the summary the command prints."""
    from training.engine.scoring import dask_score

    require_partitioned(data)
    model = model_folder(model_uri, config, download)
    with dask_client(settings) as client:  # unreachable --scheduler: ConnectionError, exit 2
        check_across_partitions(data, client)
        choice = partitioned_cutoff(client, data, cutoff)
        step = bars.step("scoring, partition by partition") if bars else None
        summary = dask_score(client, data, out, choice.at, model_path=model, defense_out=defense_out,
                             decision_log=decision_log, overwrite=overwrite, progress=step)
    summary.update(cutoff_source=choice.source, cutoff_reason=SOURCES[choice.source], engine="dask")
    return summary


def features_cli(settings, data: Path, out: Path, cutoff: str | None, model_uri: str | None,
                 config: Path | None, overwrite: bool, quiet: bool, load: Callable) -> None:
    """``engage features --engine dask``: the checks, the progress, the printed summary; ``load(model_uri,
    config)`` is the CLI's scoring engine of ``--model-uri``."""
    from training.cli_common import parse_cutoff
    from training.cli_progress import progress_bars
    from training.engine.outfolder import check_out_folder
    from training.engine.parts import require_partitioned

    require_partitioned(data)
    check_out_folder(out, "--out", overwrite=overwrite)
    with progress_bars(quiet) as bars:
        engine = None
        if model_uri is not None:
            bars.note(f"loading {model_uri}")
            engine = load(model_uri, config)
        summary = features_command(settings, data, out, parse_cutoff(cutoff), overwrite=overwrite, bars=bars,
                                   pipeline=None if engine is None else engine.system.pipeline)
    summary["pipeline"] = "fitted on --data" if engine is None else engine.info.version
    typer.echo(json.dumps(summary))


def score_cli(settings, data: Path, out: Path, cutoff: str | None, defense_out: Path | None,
              model_uri: str | None, config: Path | None, decision_log: Path | None, overwrite: bool,
              quiet: bool, download: Callable[[str, Path | None], Path]) -> None:
    """``engage score --engine dask``: the checks, the progress, the printed summary."""
    from training.cli_common import echo_json, parse_cutoff
    from training.cli_progress import progress_bars
    from training.engine.outfolder import check_files, check_out_folder
    from training.engine.parts import require_partitioned

    require_partitioned(data)
    check_out_folder(out, "--out", overwrite=overwrite)
    check_files([] if defense_out is None else [(defense_out, "--defense-out")], overwrite=overwrite)
    with progress_bars(quiet) as bars:
        bars.note(f"scoring {data} on Dask")
        result = score_command(settings, data, out, parse_cutoff(cutoff), model_uri=model_uri, config=config,
                               download=download, defense_out=defense_out, decision_log=decision_log,
                               overwrite=overwrite, bars=bars)
    if not quiet:
        typer.echo(f"scored at {result['cutoff']}: {result['cutoff_reason']}", err=True)
    echo_json(result, None)
