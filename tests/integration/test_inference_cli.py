"""``medobs exporter inference`` as a user runs it: the sidecar process, its flags, its errors."""

import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from medobs.core.catalog import inference as catalog
from tests.conftest import REPO, free_port, medobs, require_binary
from tests.inference_support import MODEL, Exposition, simulated_tfserving, wait_until


def test_the_sidecar_serves_status_bridge_probe_and_proxy_then_stops_on_sigterm():
    with simulated_tfserving() as (_, tf_url):
        metrics_port, proxy_port = free_port(), free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "medobs.cli", "exporter", "inference", "--listen", f"127.0.0.1:{metrics_port}",
             "--tfserving-url", tf_url, "--model", MODEL, "--probe-interval", "0.2", "--probe-shape", "8,8,3",
             "--proxy-listen", f"127.0.0.1:{proxy_port}"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            wait_until(lambda: requests.get(metrics_url, timeout=1))
            answer = requests.post(
                f"http://127.0.0.1:{proxy_port}/v1/models/{MODEL}:predict", json={"instances": [[1.0]] * 2}, timeout=5
            )
            assert answer.status_code == 200
            time.sleep(0.5)
            text = requests.get(metrics_url, timeout=5).text
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    out = Exposition(text)
    assert out.value(catalog.UP.name) == 1
    assert out.value(catalog.MODEL_AVAILABLE.name, model=MODEL) == 1
    assert out.value(catalog.PROBE_REQUESTS.name, model=MODEL, outcome="ok", code="200") >= 2
    assert out.value(catalog.REQUESTS.name, model=MODEL, outcome="ok", code="200") == 1
    assert out.value(catalog.IMAGES.name, model=MODEL) == 2
    assert out.value(catalog.SERVER_REQUESTS.name, model=MODEL, status="OK") >= 3
    assert "_created" not in text
    assert f"proxying http://127.0.0.1:{proxy_port} to {tf_url}" in stderr
    checked = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def one_line_error(*args: str) -> str:
    result = medobs("exporter", "inference", *args, timeout=30)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args,expected",
    [
        ([], "the following arguments are required: --model"),
        (["--model", MODEL, "--tfserving-url", "ftp://tf:8501"], "'ftp://tf:8501' is not an http(s) URL"),
        (["--model", "a/b"], "'a/b' is not a model name"),
        (["--model", MODEL, "--probe-shape", "224,x,3"], "'224,x,3' is not a tensor shape"),
        (["--model", MODEL, "--probe-timeout", "0"], "'0' is not a number of seconds above 0"),
        (["--model", MODEL, "--probe-interval", "soon"], "'soon' is not a number of seconds"),
        (["--model", MODEL, "--proxy-listen", "8502"], "'8502' is not HOST:PORT"),
        (["--model", MODEL, "--proxy-max-body", "0"], "'0' is not a size above 0 (for example 65536, 500KB or 512MiB)"),
        (["--model", MODEL, "--proxy-max-header-size", "16 parsecs"], "'16 parsecs' is not a size above 0"),
        (["--model", MODEL, "--proxy-idle-timeout", "0"], "'0' is not a number of seconds above 0"),
    ],
)
def test_usage_mistakes_are_one_line(args, expected):
    assert expected in one_line_error(*args)


def test_an_unreadable_or_wrong_probe_body_is_one_line(tmp_path):
    missing = tmp_path / "missing.json"
    assert one_line_error("--model", MODEL, "--listen", f"127.0.0.1:{free_port()}", "--probe-body", str(missing)) == (
        f"medobs exporter: error: cannot read --probe-body {missing}: No such file or directory"
    )
    wrong = tmp_path / "golden.json"
    wrong.write_text('{"image": [1, 2, 3]}')
    line = one_line_error("--model", MODEL, "--listen", f"127.0.0.1:{free_port()}", "--probe-body", str(wrong))
    assert line.startswith(f"medobs exporter: error: --probe-body {wrong} is not a :predict body")


@pytest.mark.parametrize("flag", ["--listen", "--proxy-listen"])
def test_a_port_in_use_is_one_line(flag):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        other = "--proxy-listen" if flag == "--listen" else "--listen"
        line = one_line_error("--model", MODEL, "--probe-interval", "0", flag, f"127.0.0.1:{port}",
                              other, f"127.0.0.1:{free_port()}")
    assert f"cannot listen on 127.0.0.1:{port}" in line and "Address already in use" in line
