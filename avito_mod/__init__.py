import os

# One BLAS thread per process, set before NumPy loads OpenBLAS. The served heads, the
# none-of-these detector and the ImageNet head are small matrix products; with a BLAS
# thread per core in each of several worker processes, the threads spin against each other
# and the web server: an inference worker fell from 27 to 11 ads/s (bench/pipeline.py).
# An operator may still set it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
