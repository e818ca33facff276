"""The scoring service's settings, read from the environment once and checked before anything starts.

``engage serve`` reads them in its own process before it starts any worker, so a bad setting ends the command
with a message naming the variable instead of a server that answers 500 on every path; each worker reads them
again when its service starts and refuses to start on the same errors (a plain ``bentoml serve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from serving.auth import token_from_env
from serving.decision_log import PERIODS, Rotation

MB = 2**20


class SettingsError(ValueError):
    """A setting that keeps the service from starting; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class RequestLimits:
    """How much one request may carry, and how large requests are scored.

    ``max_body_bytes``: larger bodies get 413 before they are read; ``max_touchpoints``: touchpoints of all the
    request's customers together (413 beyond); ``slice_touchpoints``: a request with more is scored in slices of
    about this many, with other requests' work in between.
    """

    max_body_bytes: int = 64 * MB
    max_touchpoints: int = 500_000
    slice_touchpoints: int = 20_000


@dataclass(frozen=True)
class ServiceSettings:
    """Everything a worker reads from the environment (see the table in ``serving/service.py``)."""

    limits: RequestLimits
    token: str | None
    decision_log: Path | None
    rotation: Rotation
    load_retry_s: float
    linger_s: float
    gc_freeze: bool
    reuseport: bool
    actions: str | None
    log_level: int = 20
    reload_s: float = 30.0
    insecure: bool = False


LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def env_flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """A boolean environment setting (1/true/yes/on)."""
    value = env.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    """A path setting (None when unset or empty)."""
    value = env.get(name)
    return Path(value) if value else None


def env_number(env: Mapping[str, str], name: str, default: float, *, minimum: float, unit: str) -> float:
    """A number setting of at least ``minimum``; the error names the variable and the unit."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number of {unit}") from None
    if not value >= minimum:  # also catches NaN
        raise SettingsError(f"{name}: {raw!r} must be at least {minimum:g} {unit}")
    return value


def read_limits(env: Mapping[str, str]) -> RequestLimits:
    """The request limits from ``ENGAGE_MAX_BODY_MB``, ``ENGAGE_MAX_REQUEST_TOUCHPOINTS`` and
    ``ENGAGE_SLICE_TOUCHPOINTS``."""
    d = RequestLimits()
    body_mb = env_number(env, "ENGAGE_MAX_BODY_MB", d.max_body_bytes / MB, minimum=0.001, unit="megabytes")
    return RequestLimits(
        max_body_bytes=int(body_mb * MB),
        max_touchpoints=int(env_number(env, "ENGAGE_MAX_REQUEST_TOUCHPOINTS", d.max_touchpoints, minimum=1,
                                       unit="touchpoints")),
        slice_touchpoints=int(env_number(env, "ENGAGE_SLICE_TOUCHPOINTS", d.slice_touchpoints, minimum=1,
                                         unit="touchpoints")),
    )


def read_rotation(env: Mapping[str, str]) -> Rotation:
    """Decision-log rotation from ``ENGAGE_DECISION_LOG_MAX_MB`` (0: no size limit), ``ENGAGE_DECISION_LOG_ROTATE``
    (none, hourly, daily) and ``ENGAGE_DECISION_LOG_KEEP`` (rotated files kept; 0: all)."""
    d = Rotation()
    size_mb = env_number(env, "ENGAGE_DECISION_LOG_MAX_MB", (d.max_bytes or 0) / MB, minimum=0, unit="megabytes")
    every = env.get("ENGAGE_DECISION_LOG_ROTATE", d.every).strip().lower()
    if every not in PERIODS:
        raise SettingsError(f"ENGAGE_DECISION_LOG_ROTATE: {every!r} is not one of {', '.join(PERIODS)}")
    keep = env_number(env, "ENGAGE_DECISION_LOG_KEEP", d.keep, minimum=0, unit="files")
    return Rotation(max_bytes=int(size_mb * MB) or None, every=every, keep=int(keep))


def read_token(env: Mapping[str, str]) -> str | None:
    """The API token (None: authentication off), checked as :func:`serving.auth.token_from_env` does; a missing,
    unreadable or too short token is a :class:`SettingsError` that never shows the token."""
    try:
        return token_from_env(env)
    except OSError as exc:
        raise SettingsError(
            f"ENGAGE_API_TOKEN_FILE: {env.get('ENGAGE_API_TOKEN_FILE')} cannot be read "
            f"({exc.strerror or type(exc).__name__})"
        ) from None
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def read_settings(env: Mapping[str, str]) -> ServiceSettings:
    """Every service setting from ``env``; raises :class:`SettingsError` for the first bad one."""
    level = env.get("ENGAGE_LOG_LEVEL", "info").strip().lower()
    if level not in LOG_LEVELS:
        raise SettingsError(f"ENGAGE_LOG_LEVEL: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return ServiceSettings(
        limits=read_limits(env),
        token=read_token(env),
        decision_log=env_path(env, "ENGAGE_DECISION_LOG"),
        rotation=read_rotation(env),
        load_retry_s=env_number(env, "ENGAGE_LOAD_RETRY_S", 10.0, minimum=0.05, unit="seconds"),
        linger_s=env_number(env, "ENGAGE_BATCH_LINGER_MS", 1.5, minimum=0, unit="milliseconds") / 1000,
        gc_freeze=env_flag(env, "ENGAGE_GC_FREEZE", default=True),
        reuseport=env_flag(env, "ENGAGE_REUSEPORT", default=False),
        actions=env.get("ENGAGE_ACTIONS") or None,
        log_level=LOG_LEVELS[level],
        reload_s=env_number(env, "ENGAGE_RELOAD_S", 30.0, minimum=0, unit="seconds"),
        insecure=env_flag(env, "ENGAGE_INSECURE"),
    )
