"""The bodies of the service's answers about its own model: readiness (``GET /readyz``) and reloads
(``POST /admin/reload``).

A worker stays ready while a model serves, also when loading a newer champion failed: ``/readyz`` then answers
200 with the failure in ``reload_error`` (an orchestrator keeps sending traffic to the version that works, and
a monitor sees the failure); it answers 503 only while no model is loaded at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ReadinessBody(BaseModel):
    """``GET /readyz`` when a model serves (200)."""

    ready: bool = Field(description="Always true here: a model is loaded and requests are scored", examples=[True])
    model_version: str = Field(description="The version this worker serves", examples=["engage-decision-system/7"])
    reload_error: str | None = Field(
        description="Why loading a newer champion failed (the version above keeps serving); null when the last "
        "reload, if any, succeeded",
        examples=[None],
    )


class ReloadResponse(BaseModel):
    """What ``POST /admin/reload`` did in the worker that answered (the server's other workers follow within a
    second)."""

    status: Literal["swapped", "unchanged", "failed", "loading"] = Field(
        description="swapped: the new champion serves now; unchanged: the champion is the version served; failed: "
        "the new version could not be loaded and the old one keeps serving (`error` says why); loading: still "
        "loading after the wait, it is swapped in when loaded (watch /metadata)",
        examples=["swapped"],
    )
    model_version: str | None = Field(description="The version serving now", examples=["engage-decision-system/8"])
    previous_version: str | None = Field(description="The version served before", examples=["engage-decision-system/7"])
    error: str | None = Field(description="Why the reload failed (status failed), else null", examples=[None])
    seconds: float = Field(description="How long checking and loading took", examples=[4.2])
