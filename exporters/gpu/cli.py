"""``medobs exporter gpu``: the command line of the NVML GPU exporter."""

from __future__ import annotations

import argparse
import os
import socket
from typing import TYPE_CHECKING

from exporters.gpu.podresources import DEFAULT_SOCKET
from medobs.core.runtime import add_server_arguments, positive_seconds, seconds, serve

if TYPE_CHECKING:
    from exporters.gpu.collector import GpuOptions

DEFAULT_PORT = 9400


def add_parser(exporters: argparse._SubParsersAction) -> None:
    parser = exporters.add_parser(
        "gpu",
        help="NVIDIA GPUs through NVML, attributed to pods (port 9400)",
        description=(
            "Serve NVIDIA GPU metrics read through NVML (nvidia-ml-py): utilisation, memory, "
            "temperature, power, clocks, throttle reasons, ECC and XID errors, PCIe, processes, "
            "MIG, and which pod holds each GPU (kubelet pod-resources API). Without NVML (no "
            "library, no driver, no permission) it keeps serving with medobs_gpu_up 0 and the "
            "reason, and retries initialisation with backoff."
        ),
        epilog="Example: medobs exporter gpu --web.listen-address :9400 --dcgm-compatible",
    )
    add_server_arguments(parser, DEFAULT_PORT)
    parser.add_argument(
        "--dcgm-compatible", action="store_true",
        help="also expose dcgm-exporter's default DCGM_FI_DEV_* names and labels (for NVIDIA's dashboard)",
    )
    parser.add_argument(
        "--hostname", metavar="NAME",
        help="the hostname label (default: $NODE_NAME, else this machine's name)",
    )
    parser.add_argument(
        "--pod-resources-socket", default=DEFAULT_SOCKET, metavar="PATH",
        help="the kubelet pod-resources socket; attribution is off while it is absent (default: %(default)s)",
    )
    parser.add_argument(
        "--pod-refresh-interval", type=positive_seconds, default=10.0, metavar="SECONDS",
        help="how often to ask the kubelet which pod holds which GPU (default: %(default)s)",
    )
    parser.add_argument(
        "--pcie-interval", type=seconds, default=10.0, metavar="SECONDS",
        help="how often to sample PCIe throughput in the background; 0 turns it off (default: %(default)s)",
    )
    parser.add_argument(
        "--nvml-retry-max", type=positive_seconds, default=60.0, metavar="SECONDS",
        help="longest wait between NVML initialisation attempts, doubling from 1 s (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-no-gpu", action="store_true",
        help="a machine without the NVIDIA driver (NVML library not found, driver not loaded) is healthy with "
        "no GPUs: medobs_gpu_up 1 (medobs_gpu_nvml_unavailable still says why); for the local stack and "
        "mixed node pools, not for GPU nodes, where it would hide a lost driver",
    )
    parser.set_defaults(handler=run)


def options(args: argparse.Namespace) -> GpuOptions:
    """The exporter's options from the flags and the environment."""
    from exporters.gpu.collector import GpuOptions

    return GpuOptions(
        hostname=args.hostname or os.environ.get("NODE_NAME") or socket.gethostname(),
        dcgm_compatible=args.dcgm_compatible,
        pod_resources_socket=args.pod_resources_socket,
        pod_refresh_interval=args.pod_refresh_interval,
        pcie_interval=args.pcie_interval,
        retry_first=min(1.0, args.nvml_retry_max),
        retry_max=args.nvml_retry_max,
        ceiling=args.scrape_timeout_ceiling,
        allow_no_gpu=args.allow_no_gpu,
    )


def run(args: argparse.Namespace) -> int:
    import pynvml

    from exporters.gpu.collector import GpuExporter

    exporter = GpuExporter(pynvml, options(args))
    try:  # NVML is started once the web config is read and every address listens
        return serve(exporter, args, extra=[exporter.status], then=exporter.start)
    finally:
        exporter.stop()
