"""Model availability from TF Serving's model status API (``GET /v1/models/NAME``).

Every version TF Serving knows gets one series per state, 1 for the current one (as
kube-state-metrics does for pod phases), and its error code; ``model_available`` is the one
series to alert on: 0 when no version is AVAILABLE, the model is unknown to TF Serving, or TF
Serving does not answer::

    medobs_inference_model_available{model="resnet50_chest_xray"} 1.0
    medobs_inference_model_version_state{model="resnet50_chest_xray",state="AVAILABLE",version="1"} 1.0
    medobs_inference_model_version_state{model="resnet50_chest_xray",state="LOADING",version="1"} 0.0
    medobs_inference_model_version_error{error_code="OK",model="resnet50_chest_xray",version="1"} 1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric

from medobs.core.catalog import inference as catalog
from medobs.core.runtime import gauge

#: TF Serving's ModelVersionStatus.State names.
STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")


@dataclass(frozen=True)
class VersionStatus:
    version: str
    state: str
    error_code: str


def parse_status(payload: Any) -> list[VersionStatus]:
    """The versions in a ``GetModelStatusResponse`` as JSON; ValueError when it is not one."""
    try:
        return [
            VersionStatus(str(entry["version"]), str(entry["state"]), str(entry.get("status", {}).get("error_code", "OK")))
            for entry in payload["model_version_status"]
        ]
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a model status answer ({type(error).__name__}: {error})") from None


def status_families(versions: Mapping[str, Sequence[VersionStatus]]) -> list[Metric]:
    """Families for each model's versions (an empty list: the model has no version TF Serving knows)."""
    available = gauge(catalog.MODEL_AVAILABLE)
    states = gauge(catalog.MODEL_VERSION_STATE)
    errors = gauge(catalog.MODEL_VERSION_ERROR)
    for model, model_versions in versions.items():
        available.add_metric([model], float(any(v.state == "AVAILABLE" for v in model_versions)))
        for status in model_versions:
            known = STATES if status.state in STATES else (*STATES, status.state)
            for state in known:
                states.add_metric([model, status.version, state], float(state == status.state))
            errors.add_metric([model, status.version, status.error_code], 1.0)
    return [available, states, errors]
