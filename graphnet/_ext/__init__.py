"""Cython kernels of the cpu backend (built by setup.py with OpenMP); each mirrors a NumPy reference kernel."""
