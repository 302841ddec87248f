"""The NVML GPU exporter (``medobs exporter gpu``): see ``docs/exporters/gpu.md``.

One module per concern: ``session`` (NVML initialised once, retried with backoff),
``nvml_errors`` (how NVML's errors are sorted and named), ``fields`` (per-GPU readings at
scrape time), ``background`` (threads and their health), ``xid`` (XID events counted),
``pcie`` (PCIe throughput sampled), ``podresources`` and ``pods`` (kubelet pod attribution),
``families`` and ``dcgm`` (exposition, dcgm-exporter's names), ``collector`` (the exporter),
``cli`` (the command).
"""
