"""The ready-to-copy schedules in deploy/retrain parse as what they claim to be, and each runs engage retrain
with its report going somewhere."""

from __future__ import annotations

import configparser
import shlex

import yaml

from tests.paths import PROJECT
from training.cli import app

FOLDER = PROJECT / "deploy" / "retrain"


def _runs_retrain(words: list[str]) -> None:
    i = words.index("retrain")
    assert words[i - 1].endswith("engage")
    assert "--data" in words and "--report" in words and "--config" in words
    from typer.main import get_command

    retrain = get_command(app).commands["retrain"]
    known = {opt for p in retrain.params for opt in p.opts}
    assert {w for w in words[i + 1:] if w.startswith("--")} <= known


def test_crontab_line():
    lines = [ln for ln in (FOLDER / "crontab").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    minute, hour, dom, month, dow = fields[:5]
    assert minute.isdigit() and hour.isdigit() and (dom, month) == ("*", "*") and dow.isdigit()
    command = fields[5].split(">>")[0]
    words = shlex.split(command.replace("&&", " && "))
    _runs_retrain(words[words.index("&&") + 1:])


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((FOLDER / name).read_text())
    return parser


def test_systemd_service_and_timer():
    service, timer = _unit("engage-retrain.service"), _unit("engage-retrain.timer")
    assert service["Service"]["Type"] == "oneshot"
    _runs_retrain(shlex.split(service["Service"]["ExecStart"]))
    assert set(service["Service"]["SuccessExitStatus"].split()) == {"3", "4"}
    assert timer["Timer"]["OnCalendar"].startswith("Mon")
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_kubernetes_cronjob():
    spec = yaml.safe_load((FOLDER / "cronjob.yaml").read_text())
    assert spec["kind"] == "CronJob" and spec["apiVersion"] == "batch/v1"
    assert spec["spec"]["concurrencyPolicy"] == "Forbid"
    pod = spec["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    _runs_retrain(container["command"])
    assert container["resources"]["requests"]["memory"] and container["resources"]["requests"]["cpu"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert {v["name"] for v in pod["volumes"]} == set(mounts) == {"registry", "data"}
    assert any(w.startswith(mounts["data"]) for w in container["command"])
    assert any(w.startswith(mounts["registry"]) for w in container["command"])
