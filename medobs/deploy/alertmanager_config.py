"""The Alertmanager routing as a prometheus-operator ``AlertmanagerConfig`` (monitoring.coreos.com/v1alpha1).

kube-prometheus-stack's Alertmanager owns its ``alertmanager.yml``; a namespace adds its routes,
receivers and inhibitions with an AlertmanagerConfig object instead, which the operator merges
in (under a route matching ``namespace="<the object's namespace>"`` by default). This module
renders the one definition of the routing, :mod:`alerts.alertmanager` (its ``route()``,
``inhibit_rules()`` and ``production_receivers()``), into that object:

- keys in camelCase, matchers as ``{name, value, matchType}``, PagerDuty's ``links`` as
  ``pagerDutyLinkConfigs`` (``{href, alt}``);
- every ``*_file`` credential (a file under ``/etc/alertmanager/secrets/<secret>/<key>``, where
  the operator mounts a Secret) becomes a reference ``{name: <secret>, key: <key>}`` to the
  Secret in the object's namespace: no credential is ever in the object.

The receivers' URLs and Secret keys are the site's (``receivers`` in the site file).
"""

from __future__ import annotations

import re
from typing import Any

from alerts import alertmanager
from medobs.core import scrape_jobs

SECRETS_MOUNT = "/etc/alertmanager/secrets/"
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
#: Alertmanager configuration keys whose AlertmanagerConfig name is not their camelCase.
_RENAMED = {"source_matchers": "sourceMatch", "target_matchers": "targetMatch"}
_MATCHER_KEYS = ("matchers", "source_matchers", "target_matchers")


def matcher(text: str) -> dict[str, str]:
    """``severity="critical"`` as ``{"name": "severity", "value": "critical", "matchType": "="}``."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"not a matcher this renderer understands: {text!r}")
    name, operator, value = found.groups()
    return {"name": name, "value": value.replace('\\"', '"').replace("\\\\", "\\"), "matchType": operator}


def _camel(key: str) -> str:
    if key in _RENAMED:
        return _RENAMED[key]
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


def secret_reference(path: str) -> dict[str, str]:
    """``/etc/alertmanager/secrets/NAME/KEY`` as the SecretKeySelector ``{name: NAME, key: KEY}``."""
    name, _, key = path.removeprefix(SECRETS_MOUNT).partition("/")
    if not path.startswith(SECRETS_MOUNT) or not name or not key or "/" in key:
        raise ValueError(f"{path!r} is not a mounted Secret key ({SECRETS_MOUNT}NAME/KEY)")
    return {"name": name, "key": key}


def to_custom_resource(config: Any) -> Any:
    """An Alertmanager configuration fragment in the AlertmanagerConfig CRD's form."""
    if isinstance(config, list):
        return [to_custom_resource(item) for item in config]
    if not isinstance(config, dict):
        return config
    converted: dict[str, Any] = {}
    for key, value in config.items():
        if key in _MATCHER_KEYS:
            converted[_camel(key)] = [matcher(text) for text in value]
        elif key == "links":
            # PagerDuty's links: the CRD's pagerDutyLinkConfigs, the link text named `alt`.
            converted["pagerDutyLinkConfigs"] = [{"href": link["href"], "alt": link["text"]} for link in value]
        elif key.endswith("_file"):
            converted[_camel(key.removesuffix("_file"))] = secret_reference(value)
        else:
            converted[_camel(key)] = to_custom_resource(value)
    return converted


def alertmanager_config() -> dict[str, Any]:
    """The AlertmanagerConfig object of the platform's routing, in the site's namespace."""
    spec = to_custom_resource({
        "route": alertmanager.route(),
        "inhibit_rules": alertmanager.inhibit_rules(),
        "receivers": alertmanager.production_receivers(),
    })
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": scrape_jobs.kubernetes_metadata("medobs", picked_up=True),
        "spec": spec,
    }
