"""Shared pytest setup for the test suite."""

import os

# The matrices in these tests are small (at most 128 x 128). A multi-threaded OpenBLAS spins
# its threads on every product, which on a small, busy machine (2 cores) made a 64 x 64 complex
# product ~70x slower (14 ms instead of 0.2 ms). Must be set before NumPy is first imported;
# an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
