"""The package's NVML GPU exporter (``medobs exporter gpu``), and the dcgm-exporter names it can mimic."""

from medobs.core.catalog import exporter_health, metric

SOURCE = "medobs-gpu"
_GPU = ("gpu", "uuid")

UP, SCRAPE_DURATION, SCRAPE_ERRORS, LAST_SUCCESS = exporter_health("medobs_gpu", SOURCE, "NVML")

INFO = metric(
    "medobs_gpu_info", "gauge", "1 per GPU, with its model, driver, CUDA version, PCI bus id and host.",
    source=SOURCE,
    labels=_GPU + ("model", "driver_version", "cuda_version", "pci_bus_id", "hostname"),
)
LOST = metric(
    "medobs_gpu_lost", "gauge",
    "1 when NVML reports the GPU lost (fallen off the bus) or needing a reset, with the reason; else 0.",
    source=SOURCE, labels=_GPU + ("reason",),
)
NVML_UNAVAILABLE = metric(
    "medobs_gpu_nvml_unavailable", "gauge",
    "1 while NVML cannot be used, with the reason (library_not_found, driver_not_loaded, no_permission ...).",
    source=SOURCE, labels=("reason",),
)
FIELD_ERRORS = metric(
    "medobs_gpu_field_errors_total", "counter",
    "NVML reads that failed (other than 'not supported', which is skipped), by field and reason.",
    source=SOURCE, labels=("field", "reason"),
)
BACKGROUND_AGE = metric(
    "medobs_gpu_background_age_seconds", "gauge",
    "Seconds since a background task (pcie, pods) last refreshed its cached values.",
    source=SOURCE, labels=("task",), unit="seconds",
)
BACKGROUND_ERRORS = metric(
    "medobs_gpu_background_errors_total", "counter",
    "Failed runs of a background task (pcie, pods, xid), by kind of error.",
    source=SOURCE, labels=("task", "kind"),
)
UTILIZATION = metric(
    "medobs_gpu_utilization_ratio", "gauge", "Share of time a kernel ran on the GPU (0..1).",
    source=SOURCE, labels=_GPU, unit="ratio",
)
MEMORY_UTILIZATION = metric(
    "medobs_gpu_memory_utilization_ratio", "gauge",
    "Share of time the memory controller was busy (0..1).",
    source=SOURCE, labels=_GPU, unit="ratio",
)
MEMORY_USED = metric(
    "medobs_gpu_memory_used_bytes", "gauge", "Framebuffer memory used.",
    source=SOURCE, labels=_GPU, unit="bytes",
)
MEMORY_FREE = metric(
    "medobs_gpu_memory_free_bytes", "gauge", "Framebuffer memory free.",
    source=SOURCE, labels=_GPU, unit="bytes",
)
MEMORY_TOTAL = metric(
    "medobs_gpu_memory_total_bytes", "gauge", "Framebuffer memory in all.",
    source=SOURCE, labels=_GPU, unit="bytes",
)
TEMPERATURE = metric(
    "medobs_gpu_temperature_celsius", "gauge", "GPU core temperature.",
    source=SOURCE, labels=_GPU, unit="celsius",
)
POWER = metric(
    "medobs_gpu_power_watts", "gauge", "Power draw.", source=SOURCE, labels=_GPU, unit="watts",
)
POWER_LIMIT = metric(
    "medobs_gpu_power_limit_watts", "gauge", "Enforced power limit.",
    source=SOURCE, labels=_GPU, unit="watts",
)
ENERGY = metric(
    "medobs_gpu_energy_joules_total", "counter", "Energy consumed since the driver loaded.",
    source=SOURCE, labels=_GPU, unit="joules",
)
SM_CLOCK = metric(
    "medobs_gpu_sm_clock_hertz", "gauge", "SM clock.", source=SOURCE, labels=_GPU, unit="hertz",
)
MEMORY_CLOCK = metric(
    "medobs_gpu_memory_clock_hertz", "gauge", "Memory clock.", source=SOURCE, labels=_GPU, unit="hertz",
)
PERFORMANCE_STATE = metric(
    "medobs_gpu_performance_state", "gauge", "Performance state, 0 (P0, fastest) to 15.",
    source=SOURCE, labels=_GPU,
)
CLOCK_EVENT = metric(
    "medobs_gpu_clock_event_active", "gauge",
    "1 while a clock event (throttle) reason holds clocks down, per reason.",
    source=SOURCE, labels=_GPU + ("reason",),
)
ECC_ERRORS = metric(
    "medobs_gpu_ecc_errors_total", "counter",
    "ECC errors, by error_type (corrected / uncorrected) and counter (volatile / aggregate).",
    source=SOURCE, labels=_GPU + ("error_type", "counter"),
)
REMAPPED_ROWS = metric(
    "medobs_gpu_remapped_rows", "gauge", "Rows remapped, by cause (correctable / uncorrectable).",
    source=SOURCE, labels=_GPU + ("cause",),
)
REMAPPED_ROWS_PENDING = metric(
    "medobs_gpu_remapped_rows_pending", "gauge", "1 when a row remap waits for a GPU reset.",
    source=SOURCE, labels=_GPU,
)
REMAPPED_ROWS_FAILED = metric(
    "medobs_gpu_remapped_rows_failed", "gauge", "1 when a row remap failed.",
    source=SOURCE, labels=_GPU,
)
PCIE_TX = metric(
    "medobs_gpu_pcie_transmit_bytes_per_second", "gauge", "PCIe transmit throughput (sampled).",
    source=SOURCE, labels=_GPU, unit="bytes",
)
PCIE_RX = metric(
    "medobs_gpu_pcie_receive_bytes_per_second", "gauge", "PCIe receive throughput (sampled).",
    source=SOURCE, labels=_GPU, unit="bytes",
)
PCIE_REPLAYS = metric(
    "medobs_gpu_pcie_replays_total", "counter", "PCIe replay counter.", source=SOURCE, labels=_GPU,
)
ENCODER_UTILIZATION = metric(
    "medobs_gpu_encoder_utilization_ratio", "gauge", "Video encoder utilisation (0..1).",
    source=SOURCE, labels=_GPU, unit="ratio",
)
DECODER_UTILIZATION = metric(
    "medobs_gpu_decoder_utilization_ratio", "gauge", "Video decoder utilisation (0..1).",
    source=SOURCE, labels=_GPU, unit="ratio",
)
PERSISTENCE_MODE = metric(
    "medobs_gpu_persistence_mode", "gauge", "1 when persistence mode is on.",
    source=SOURCE, labels=_GPU,
)
MIG_MODE = metric(
    "medobs_gpu_mig_mode", "gauge", "1 when MIG mode is on.", source=SOURCE, labels=_GPU,
)
MIG_MEMORY_USED = metric(
    "medobs_gpu_mig_memory_used_bytes", "gauge", "Memory used by each MIG instance.",
    source=SOURCE, labels=_GPU + ("gpu_instance", "mig_uuid"), unit="bytes",
)
MIG_MEMORY_TOTAL = metric(
    "medobs_gpu_mig_memory_total_bytes", "gauge", "Memory of each MIG instance.",
    source=SOURCE, labels=_GPU + ("gpu_instance", "mig_uuid"), unit="bytes",
)
XID_ERRORS = metric(
    "medobs_gpu_xid_errors_total", "counter", "XID errors reported by NVML events, by XID code.",
    source=SOURCE, labels=("uuid", "xid"),
)
XID_LAST_SEEN = metric(
    "medobs_gpu_xid_last_seen_timestamp_seconds", "gauge", "Unix time an XID code was last seen.",
    source=SOURCE, labels=("uuid", "xid"), unit="seconds",
)
PROCESS_MEMORY = metric(
    "medobs_gpu_process_memory_used_bytes", "gauge", "GPU memory used by each process (host pid).",
    source=SOURCE, labels=_GPU + ("pid",), unit="bytes",
)
POD_INFO = metric(
    "medobs_gpu_pod_info", "gauge",
    "1 for each GPU and the pod / container it is allocated to (kubelet pod-resources API).",
    source=SOURCE, labels=("uuid", "namespace", "pod", "container"),
)

# dcgm-exporter's default names, exposed too with --dcgm-compatible.
_DCGM = ("gpu", "UUID", "device", "modelName", "Hostname")
DCGM_GPU_UTIL = metric(
    "DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_FB_USED = metric(
    "DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_FB_FREE = metric(
    "DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_GPU_TEMP = metric(
    "DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_POWER_USAGE = metric(
    "DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_SM_CLOCK = metric(
    "DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_MEM_CLOCK = metric(
    "DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_MEM_COPY_UTIL = metric(
    "DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_ENC_UTIL = metric(
    "DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_DEC_UTIL = metric(
    "DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_TOTAL_ENERGY = metric(
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter",
    "Total energy consumption since boot (in mJ).", source="dcgm-exporter", labels=_DCGM,
)
DCGM_PCIE_REPLAY = metric(
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_CORRECTABLE_REMAPPED_ROWS = metric(
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_UNCORRECTABLE_REMAPPED_ROWS = metric(
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_ROW_REMAP_FAILURE = metric(
    "DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed",
    source="dcgm-exporter", labels=_DCGM,
)
DCGM_XID_ERRORS = metric(
    "DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.",
    source="dcgm-exporter", labels=_DCGM,
)
