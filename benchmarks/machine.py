"""What a benchmark ran on: the CPUs and their load, Python, numpy's BLAS and its thread pools, and
PyTorch's BLAS and threads when the benchmark has imported it. Each script prints these lines first."""
import os
import re
import sys

import numpy as np


def blas_threads():
    """The thread count of numpy's BLAS (threadpoolctl tells, when installed; else the environment's
    OPENBLAS_NUM_THREADS or the CPU count)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.cpu_count())
    counts = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    return max(counts) if counts else 1


def blas_name():
    """numpy's BLAS library and version (threadpoolctl's report, else numpy's build configuration)."""
    try:
        from threadpoolctl import threadpool_info
        found = [f"{p['internal_api']} {p['version']}" for p in threadpool_info() if p["user_api"] == "blas"]
    except ImportError:
        found = []
    if not found:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        found = [f"{blas['name']} {blas.get('version', '')}".strip()]
    return ", ".join(found)


def describe():
    """The lines that say what the timings ran on."""
    lines = [f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min); "
             f"Python {sys.version.split()[0]}",
             f"numpy {np.__version__}: BLAS {blas_name()}, {blas_threads()} BLAS thread(s)"]
    torch = sys.modules.get("torch")  # described when the benchmark uses it; never imported here
    if torch is not None:
        built = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        lines.append(f"PyTorch {torch.__version__}: BLAS {built.group(1) if built else 'unknown'}, "
                     f"{torch.get_num_threads()} thread(s), {torch.get_num_interop_threads()} inter-op thread(s)")
    return lines
