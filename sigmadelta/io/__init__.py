"""Files: the versioned HDF5 network format and chunked run recordings."""

from .netfile import FORMAT_VERSION, FormatError, load, save
from .record import RecordingInUseError, RunRecorder, read_run, read_run_info, write_fidelity

__all__ = ["save", "load", "FORMAT_VERSION", "FormatError", "RunRecorder", "read_run",
           "read_run_info", "RecordingInUseError", "write_fidelity"]
