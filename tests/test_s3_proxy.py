"""The latency-adding proxy of tests/s3_delay_proxy.py, with real sockets against the moto server."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import S3_BUCKET
from s3_delay_proxy import DelayProxy

pytestmark = pytest.mark.s3

HERE = Path(__file__).resolve().parent


def _hostport(endpoint: str) -> tuple[str, int]:
    u = urlsplit(endpoint)
    return u.hostname, u.port


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), resp


def _ensure_bucket(endpoint: str) -> None:
    host, port = _hostport(endpoint)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    status, body, _ = _request(conn, "PUT", f"/{S3_BUCKET}")
    conn.close()
    assert status in (200, 409), body


def _timed_heads(host: str, port: int, path: str, n: int) -> list[float]:
    """`n` HEAD requests one after another on one keep-alive connection; seconds each."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.connect()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _, _ = _request(conn, "HEAD", path)
        times.append(time.perf_counter() - t)
        assert status == 200
    conn.close()
    return times


def test_each_request_on_a_keep_alive_connection_pays_the_delay(s3_endpoint):
    _ensure_bucket(s3_endpoint)
    host, port = _hostport(s3_endpoint)
    delay = 0.05
    with DelayProxy(host, port, delay * 1000) as proxy:
        assert proxy.endpoint == f"http://127.0.0.1:{proxy.port}"
        path = f"/{S3_BUCKET}"
        _timed_heads(host, port, path, 2)  # warm moto up
        direct = sorted(_timed_heads(host, port, path, 6))
        proxied = sorted(_timed_heads("127.0.0.1", proxy.port, path, 6))
    assert all(t >= delay for t in proxied), proxied
    # Medians: one delay more per request, and not two.
    extra = proxied[3] - direct[3]
    assert delay * 0.95 <= extra < 2 * delay, (direct, proxied)


def test_concurrent_requests_on_separate_connections_overlap_their_delays(s3_endpoint):
    _ensure_bucket(s3_endpoint)
    host, port = _hostport(s3_endpoint)
    delay, n = 0.15, 8
    with DelayProxy(host, port, delay * 1000) as proxy:
        conns = [http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30) for _ in range(n)]
        for c in conns:
            c.connect()
        barrier = threading.Barrier(n + 1)
        statuses = [None] * n

        def go(i):
            barrier.wait()
            statuses[i] = _request(conns[i], "HEAD", f"/{S3_BUCKET}")[0]

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        for c in conns:
            c.close()
    assert statuses == [200] * n
    # One wave: about one delay, far from n delays one after another.
    assert delay <= wall < 4 * delay, wall


def test_large_bodies_are_forwarded_byte_exact(s3_endpoint):
    _ensure_bucket(s3_endpoint)
    host, port = _hostport(s3_endpoint)
    payload = os.urandom(5 * 1024 * 1024 + 123)
    # Unsigned requests: moto lets anonymous clients read only public objects.
    key = f"/{S3_BUCKET}/proxy-{uuid.uuid4().hex[:12]}/blob"
    with DelayProxy(host, port, 20) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
        status, body, _ = _request(conn, "PUT", key, body=payload, headers={"x-amz-acl": "public-read"})
        assert status == 200, body
        t = time.perf_counter()
        status, got, _ = _request(conn, "GET", key)
        assert time.perf_counter() - t >= 0.02
        assert status == 200 and len(got) == len(payload) and got == payload
        status, part, resp = _request(conn, "GET", key, headers={"Range": "bytes=1000000-1999999"})
        assert status == 206 and part == payload[1000000:2000000]
        assert resp.getheader("Content-Range") == f"bytes 1000000-1999999/{len(payload)}"
        conn.close()
    # And the same bytes straight from the server.
    direct = http.client.HTTPConnection(host, port, timeout=60)
    assert _request(direct, "GET", key)[1] == payload
    direct.close()


def test_command_line_prints_its_port_and_proxies(s3_endpoint):
    _ensure_bucket(s3_endpoint)
    host, port = _hostport(s3_endpoint)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "s3_delay_proxy.py"),
            "--listen",
            "127.0.0.1:0",
            "--target",
            f"{host}:{port}",
            "--delay-ms",
            "30",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pport = int(proc.stdout.readline())
        conn = http.client.HTTPConnection("127.0.0.1", pport, timeout=30)
        t = time.perf_counter()
        assert _request(conn, "HEAD", f"/{S3_BUCKET}")[0] == 200
        assert time.perf_counter() - t >= 0.03
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_slow_endpoint_fixture_adds_50_ms(s3_slow_endpoint, s3_endpoint):
    _ensure_bucket(s3_endpoint)
    host, port = _hostport(s3_slow_endpoint)
    assert port != _hostport(s3_endpoint)[1]
    assert min(_timed_heads(host, port, f"/{S3_BUCKET}", 3)) >= 0.05
