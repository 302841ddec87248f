"""Validation against the prometheus-operator CRDs in tests/data/schemas, as strict as
``kubectl apply --validate=strict``.

A CRD's openAPIV3Schema does not forbid unknown fields: the API server prunes them (structural
schema pruning), so a misspelled ``podMetricEndpointz`` would be dropped without a word, and plain
JSON Schema lets it through. Every CRD validation of the tests goes through :func:`crd_validator`,
which closes each object schema that lists its ``properties`` and leaves unknown fields to
neither ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields: true``.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml

from .conftest import SCHEMAS

#: Keywords whose value is one subschema, and those whose value is a list or map of them.
_ONE = ("items", "additionalProperties", "not")
_MANY = ("allOf", "anyOf", "oneOf", "items")
_MAP = ("properties", "patternProperties")


def strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every open object schema that has
    ``properties`` (a new dict; the argument is left as it was)."""
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    for keyword in _MAP:
        if keyword in closed:
            closed[keyword] = {name: strict(sub) for name, sub in closed[keyword].items()}
    for keyword in _ONE:
        if isinstance(closed.get(keyword), dict):
            closed[keyword] = strict(closed[keyword])
    for keyword in _MANY:
        if isinstance(closed.get(keyword), list):
            closed[keyword] = [strict(sub) for sub in closed[keyword]]
    if ("properties" in closed and "additionalProperties" not in closed
            and closed.get("x-kubernetes-preserve-unknown-fields") is not True):
        closed["additionalProperties"] = False
    return closed


def crd_schema(kind: str) -> dict[str, Any]:
    """The strict openAPIV3Schema of the stored version of the operator's CRD for ``kind`` (v1, or
    v1alpha1 for AlertmanagerConfig, whose CRD is kept as an excerpt: see schemas/README.md)."""
    path = SCHEMAS / f"monitoring.coreos.com_{kind.lower()}s.yaml"
    if not path.exists():
        path = path.with_suffix(".excerpt.yaml")
    crd = yaml.safe_load(path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return strict(version["schema"]["openAPIV3Schema"])


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft202012Validator:
    """A validator for ``kind`` (PodMonitor, ServiceMonitor, PrometheusRule, AlertmanagerConfig). The schema is not
    checked against the metaschema: the PrometheusRule CRD holds a Go regex
    (``^(?i)(abort|warn)?$`` for partial_response_strategy) that Python's re refuses, on a field
    the generated objects do not set."""
    return jsonschema.Draft202012Validator(crd_schema(kind))


def validate_alertmanager_config(obj: dict[str, Any]) -> None:
    """Validate an AlertmanagerConfig, its child routes included: the CRD leaves ``routes`` open
    (``x-kubernetes-preserve-unknown-fields``) and the operator reads each into the same Route type
    as the top one, so each is held against the top route's schema here."""
    crd_validator("AlertmanagerConfig").validate(obj)
    route_schema = crd_schema("AlertmanagerConfig")["properties"]["spec"]["properties"]["route"]
    validator = jsonschema.Draft202012Validator(route_schema)
    pending = list(obj["spec"].get("route", {}).get("routes", []))
    while pending:
        route = pending.pop()
        validator.validate(route)
        pending.extend(route.get("routes", []))
