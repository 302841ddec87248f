"""The documented pod join, evaluated by promtool on the GPU exporter's attribution series."""

import json
import subprocess

import pytest

from exporters.gpu import pods
from medobs.core.catalog import gpu, lookup
from medobs.core.promql import metric_names
from tests.conftest import REPO, promql_blocks, require_binary
from tests.kubelet_server import U0, U1


def _selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def documented_pod_joins() -> list[tuple[str, str]]:
    """(where, expression) of every join with medobs_gpu_pod_info the documentation shows."""
    texts = {
        "docs/exporters/gpu.md": "\n".join(promql_blocks((REPO / "docs/exporters/gpu.md").read_text())),
        "exporters/gpu/pods.py": pods.__doc__,
    }
    joins = [
        (where, line.strip()) for where, text in texts.items() for line in text.splitlines()
        if gpu.POD_INFO.name in line and "group_left" in line
    ]
    assert {where for where, _ in joins} == set(texts)
    return joins


#: GPU 1 is time-sliced between two containers: (gpu, uuid) -> its value, and who holds it.
GPU_VALUES = {("0", U0): 0.25, ("1", U1): 0.75}
HOLDERS = [
    ("0", U0, "medical-platform", "ml-inference-7d9f", "tf-serving"),
    ("1", U1, "medical-platform", "ml-batch-1", "worker"),
    ("1", U1, "medical-platform", "ml-batch-2", "worker"),
]


@pytest.mark.parametrize("where,expr", documented_pod_joins())
def test_the_documented_pod_join_gives_each_container_of_a_time_sliced_gpu_its_gpus_value(tmp_path, where, expr):
    metrics = metric_names(expr) - {gpu.POD_INFO.name}
    assert len(metrics) == 1 and all(lookup(name) for name in metrics), expr
    target = {"instance": "gpu-node-1:9400", "job": "gpu"}
    series = [
        {"series": _selector(name, {**target, "gpu": index, "uuid": uuid}), "values": f"{value}x5"}
        for name in metrics for (index, uuid), value in GPU_VALUES.items()
    ] + [
        {"series": _selector(gpu.POD_INFO.name, {**target, "uuid": uuid, "namespace": ns, "pod": name, "container": c}),
         "values": "1x5"}
        for _, uuid, ns, name, c in HOLDERS
    ]
    expected = [  # one series per container, with the labels of both sides and the GPU's value
        {"labels": _selector("", {**target, "gpu": index, "uuid": uuid, "namespace": ns, "pod": name, "container": c}),
         "value": GPU_VALUES[index, uuid]}
        for index, uuid, ns, name, c in HOLDERS
    ]
    (tmp_path / "none.yml").write_text("groups: []\n")
    (tmp_path / "test.yml").write_text(json.dumps({
        "rule_files": ["none.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series,
                   "promql_expr_test": [{"expr": expr, "eval_time": "2m", "exp_samples": expected}]}],
    }))
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{where}: {expr}\n{result.stdout}{result.stderr}"
