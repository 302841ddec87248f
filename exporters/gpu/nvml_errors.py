"""How the exporter sorts NVML's errors: unsupported, GPU lost, NVML unusable, or a failed read.

Every error becomes a bounded ``reason`` label named after pynvml's own class
(``NVMLError_LibraryNotFound`` -> ``library_not_found``), so the set of values is pynvml's set
of error classes and nothing else.
"""

from __future__ import annotations

import re

import pynvml

#: A field this GPU, driver or permission set does not offer: skipped, never exported as a sentinel.
UNSUPPORTED = frozenset({
    pynvml.NVML_ERROR_NOT_SUPPORTED,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
    pynvml.NVML_ERROR_NO_PERMISSION,
    pynvml.NVML_ERROR_INVALID_ARGUMENT,
})
#: The GPU is gone (fallen off the bus) or unusable until reset.
DEVICE_LOST = frozenset({pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_RESET_REQUIRED})
#: NVML itself cannot be used any more: the session is shut down and initialised again.
SESSION_FATAL = frozenset({
    pynvml.NVML_ERROR_UNINITIALIZED,
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
})

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def reason(error: BaseException) -> str:
    """The bounded label value for ``error`` (``unknown`` for anything pynvml has no class for)."""
    if isinstance(error, pynvml.NVMLLibraryMismatchError):
        return "function_not_found"
    name = type(error).__name__
    if isinstance(error, pynvml.NVMLError) and name.startswith("NVMLError_"):
        return _CAMEL.sub("_", name.removeprefix("NVMLError_")).lower()
    return "unknown"


def code(error: BaseException) -> int | None:
    """NVML's error code, treating pynvml's version-mismatch wrapper as FUNCTION_NOT_FOUND."""
    if isinstance(error, pynvml.NVMLLibraryMismatchError):
        return pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    return getattr(error, "value", None)


#: What to check, for the reasons NVML most often cannot start.
HINTS = {
    "library_not_found": "libnvidia-ml.so.1 is not installed or not on the library path",
    "driver_not_loaded": "the NVIDIA kernel driver is not loaded",
    "no_permission": "this user cannot open /dev/nvidia*",
    "lib_rm_version_mismatch": "the NVML library and the kernel driver are different versions",
}


def explain(error: BaseException) -> str:
    """pynvml's message and, where known, what to check."""
    hint = HINTS.get(reason(error))
    return f"{error}; {hint}" if hint else str(error)


def describe(error: BaseException) -> str:
    """One line for logs: the reason label and :func:`explain`."""
    return f"{reason(error)}: {explain(error)}"


class DeviceLost(Exception):
    """A GPU answered that it is lost or needs a reset."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.reason = reason(error)


class SessionFailed(Exception):
    """NVML as a whole stopped working (driver unloaded, library mismatch ...)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
        self.reason = reason(error)
