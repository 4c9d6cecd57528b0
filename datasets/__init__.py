"""Sources of temporal streams (installed as ``sigmadelta.datasets``)."""
