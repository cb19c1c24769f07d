"""Test settings shared by the whole suite."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")        # thread pools would fight on a 2-core machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("GRAPHNET_HYPOTHESIS_PROFILE", "default"))
