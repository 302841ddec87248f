"""``medobs exporter inference``: the sidecar beside TF Serving in the inference pod."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, disable_created_metrics

from exporters.inference.collector import METRICS_PATH, InferenceExporter
from exporters.inference.probe import DEFAULT_SHAPE, Probe, image_body, instances_in
from exporters.inference.proxy import InferenceProxy, Limits
from exporters.inference.recorder import RequestMetrics
from medobs import UserError
from medobs.core import scrape_jobs
from medobs.core.runtime import (
    add_server_arguments,
    byte_size,
    format_size,
    listen_address,
    positive_seconds,
    safe_url,
    seconds,
    serve,
)

log = logging.getLogger("medobs.exporter.inference")

DESCRIPTION = """\
The inference sidecar: what the radiologist waits for, not only what TF Serving counts.

- model status: polls GET /v1/models/NAME at each scrape (medobs_inference_model_*);
- bridge: TF Serving's own metrics, microseconds converted to seconds, bucket bounds kept
  (medobs_inference_server_*); TF Serving down or monitoring off gives medobs_inference_up 0;
- probe: a golden :predict request every --probe-interval seconds, timed end to end, counted
  by outcome (medobs_inference_probe_*);
- proxy (--proxy-listen): a reverse proxy to TF Serving's REST API recording every inference
  request, errors and timeouts included, its batch size and images (medobs_inference_request*,
  _batch_size, _images_total).
"""

EXAMPLES = """\
example (a sidecar in the inference pod, callers sent through the proxy on 8502):
  medobs exporter inference --tfserving-url http://127.0.0.1:8501 \\
      --model resnet50_chest_xray --proxy-listen :8502
"""

_MODEL_NAME = re.compile(r"[^/:?#\s]+")


def tfserving_url(value: str) -> str:
    """argparse type: an http(s) URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL (for example http://127.0.0.1:8501)")
    return value.rstrip("/")


def model_name(value: str) -> str:
    if not _MODEL_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a model name (no '/', ':', '?', '#' or spaces)")
    return value


def image_shape(value: str) -> tuple[int, ...]:
    sizes = value.split(",")
    if not all(size.strip().isdigit() and int(size) > 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"{value!r} is not a tensor shape like 224,224,3")
    return tuple(int(size) for size in sizes)


def add_parser(exporters: argparse._SubParsersAction) -> None:
    parser = exporters.add_parser(
        "inference",
        help="TF Serving sidecar: model status, bridged latency in seconds, probe, optional proxy",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_server_arguments(parser, scrape_jobs.job("inference-exporter").port)
    parser.add_argument(
        "--tfserving-url", type=tfserving_url, default="http://127.0.0.1:8501", metavar="URL",
        help="TF Serving's REST API (default: %(default)s)",
    )
    parser.add_argument(
        "--model", dest="models", action="append", required=True, type=model_name, metavar="NAME",
        help="a model to watch, probe and label in the proxy (repeat for several)",
    )
    parser.add_argument(
        "--metrics-path", default=METRICS_PATH, metavar="PATH",
        help="TF Serving's Prometheus path, as its monitoring config sets it (default: %(default)s)",
    )
    probe = parser.add_argument_group("synthetic probe")
    probe.add_argument(
        "--probe-interval", type=seconds, default=15.0, metavar="SECONDS",
        help="seconds between golden requests to each model; 0 turns the probe off (default: %(default)s)",
    )
    probe.add_argument(
        "--probe-timeout", type=positive_seconds, default=10.0, metavar="SECONDS",
        help="a probe without an answer by then counts as a timeout (default: %(default)s)",
    )
    golden = probe.add_mutually_exclusive_group()
    golden.add_argument(
        "--probe-body", type=Path, metavar="FILE",
        help='the golden request: a JSON :predict body ({"instances": [...]} or {"inputs": ...})',
    )
    golden.add_argument(
        "--probe-shape", type=image_shape, default=DEFAULT_SHAPE, metavar="H,W,C",
        help="without --probe-body: one constant image tensor of this shape (default: 224,224,3)",
    )
    proxy = parser.add_argument_group("in-path proxy")
    proxy.add_argument(
        "--proxy-listen", type=listen_address, metavar="HOST:PORT",
        help="also serve a reverse proxy to TF Serving here and record every inference request through it",
    )
    proxy.add_argument(
        "--proxy-timeout", type=positive_seconds, default=30.0, metavar="SECONDS",
        help="a deadline for each whole exchange, the caller's upload included: 504 when TF Serving has not "
             "answered by then (408 when the caller's body has not arrived), a reset when the answer has begun "
             "(default: %(default)s)",
    )
    proxy.add_argument(
        "--proxy-max-body", type=byte_size, default=Limits.max_body, metavar="SIZE",
        help=f"larger request bodies get 413 (default: {format_size(Limits.max_body)}; bodies stream, this is not held)",
    )
    proxy.add_argument(
        "--proxy-max-header-size", type=byte_size, default=Limits.max_header, metavar="SIZE",
        help=f"a longer request line or header line gets 431 (default: {format_size(Limits.max_header)})",
    )
    proxy.add_argument(
        "--proxy-idle-timeout", type=positive_seconds, default=Limits.idle_timeout, metavar="SECONDS",
        help="a caller's connection is closed when its next request (or the rest of its head) has not come "
             "by then (default: %(default)s)",
    )
    proxy.add_argument(
        "--proxy-max-counted-answer", type=byte_size, default=Limits.counted_answer, metavar="SIZE",
        help=f"answers up to this size are held and their predictions counted (batch size, images); larger "
             f"ones stream uncounted (default: {format_size(Limits.counted_answer)})",
    )
    parser.set_defaults(handler=run)


def golden_body(args: argparse.Namespace) -> bytes:
    """The probe's request body: --probe-body's file, checked, or an image of --probe-shape."""
    if args.probe_body is None:
        return image_body(args.probe_shape)
    try:
        body = args.probe_body.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read --probe-body {args.probe_body}: {error.strerror}") from None
    try:
        instances_in(body)
    except ValueError as error:
        raise UserError(f"--probe-body {args.probe_body} is not a :predict body: {error}") from None
    return body


def run(args: argparse.Namespace) -> int:
    disable_created_metrics()  # no *_created series: Prometheus would store each as one more series
    own = CollectorRegistry(auto_describe=False)  # the probe's and the proxy's instruments
    exporter = InferenceExporter(args.tfserving_url, args.models, args.metrics_path, args.scrape_timeout_ceiling)
    probe = None
    if args.probe_interval:
        probe = Probe(
            args.tfserving_url, args.models, golden_body(args),
            interval=args.probe_interval, timeout=args.probe_timeout, registry=own,
        )
    proxy_servers = []

    def start_parts() -> None:
        if args.proxy_listen:
            limits = Limits(max_body=args.proxy_max_body, max_header=args.proxy_max_header_size,
                            idle_timeout=args.proxy_idle_timeout, counted_answer=args.proxy_max_counted_answer)
            proxy = InferenceProxy(args.tfserving_url, args.models, RequestMetrics(own), args.proxy_timeout, limits)
            proxy_servers.append(proxy.start(args.proxy_listen))
            log.info("proxying http://%s:%d to %s", *proxy_servers[0].server_address[:2], safe_url(args.tfserving_url))
        if probe is not None:
            probe.start()

    try:
        return serve(exporter, args, extra=[own], then=start_parts)
    finally:
        if probe is not None:
            probe.stop()
        for server in proxy_servers:
            server.shutdown()
