"""Counters for /api/metrics: requests, queries, errors and search latency since the server started."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class Metrics:
    """Thread-safe counters; latency percentiles over the last `window` searches."""

    def __init__(self, window: int = 10_000):
        self.started = time.monotonic()
        self.requests = 0
        self.queries = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def request(self, status: int) -> None:
        with self._lock:
            self.requests += 1
            if 400 <= status < 500:
                self.errors_4xx += 1
            elif status >= 500:
                self.errors_5xx += 1

    def query(self, ms: float) -> None:
        with self._lock:
            self.queries += 1
            self._latency_ms.append(ms)

    def snapshot(self) -> dict:
        with self._lock:
            lat = np.fromiter(self._latency_ms, dtype=np.float64)
            counts = dict(requests=self.requests, queries=self.queries, errors_4xx=self.errors_4xx,
                          errors_5xx=self.errors_5xx)
        p50, p99 = (float(v) for v in np.percentile(lat, [50, 99])) if len(lat) else (None, None)
        return {"uptime_s": time.monotonic() - self.started, **counts,
                "search_latency": {"count": len(lat), "p50_ms": p50, "p99_ms": p99}}
