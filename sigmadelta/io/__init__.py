"""Files: the versioned HDF5 network format, lava-dl netx networks and chunked run recordings."""

from .netfile import FORMAT_VERSION, FormatError, load, save
from .netx import NetxError, load_netx, save_netx
from .record import RecordingInUseError, RunRecorder, read_run, read_run_info, write_fidelity

__all__ = ["save", "load", "FORMAT_VERSION", "FormatError", "RunRecorder", "read_run",
           "read_run_info", "RecordingInUseError", "write_fidelity", "load_netx", "save_netx",
           "NetxError"]
