"""Test settings shared by the whole suite."""
import os

# The cuda tests run in Numba's CUDA simulator unless NUMBA_ENABLE_CUDASIM=0 is set (on a machine with a GPU).
# It must be decided before anything imports numba.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")        # thread pools would fight on a 2-core machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("GRAPHNET_HYPOTHESIS_PROFILE", "default"))
