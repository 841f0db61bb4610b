"""A TCP proxy that adds latency to every request, for tests and benchmarks of S3 access.

Each client connection gets its own upstream connection. When a client sends data after being
idle — its first bytes, or its first bytes after the server has answered (the start of the next
HTTP request on a keep-alive connection) — those bytes, and everything the client sends after them
until the server answers, reach the server ``delay`` later. Responses are forwarded at once. So each
request costs one extra ``delay``, and requests on separate connections wait out their delays
concurrently: a wave of N parallel requests costs one delay, N sequential ones N delays.

Command line (prints the bound port on the first stdout line, then runs until killed)::

    python tests/s3_delay_proxy.py --listen 127.0.0.1:0 --target 127.0.0.1:5123 --delay-ms 50

In-process (a background thread with its own event loop)::

    with DelayProxy("127.0.0.1", 5123, 50) as proxy:
        use(proxy.endpoint)  # http://127.0.0.1:<proxy.port>

No dependencies beyond the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading

CHUNK = 1 << 16
# How long a connection the client has closed waits for the server's answer.
LINGER_S = 30.0


class _Conn:
    """State shared by the two directions of one proxied connection."""

    def __init__(self) -> None:
        # True until the client sends, and again whenever the server has answered since.
        self.idle = True


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await writer.wait_closed()


async def _client_to_server(reader, writer, conn: _Conn, delay: float) -> None:
    loop = asyncio.get_running_loop()
    release_at = 0.0
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if conn.idle:
                # A new request: it, and the rest of it, reach the server `delay` from now.
                conn.idle = False
                release_at = loop.time() + delay
            wait = release_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # Pass the client's close on, so the server closes its side too.
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _server_to_client(reader, writer, conn: _Conn) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            conn.idle = True
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def _handle(client_reader, client_writer, target: tuple[str, int], delay: float) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        await _close(client_writer)
        return
    conn = _Conn()
    up = asyncio.create_task(_client_to_server(client_reader, server_writer, conn, delay))
    down = asyncio.create_task(_server_to_client(server_reader, client_writer, conn))
    try:
        # The server closing ends the connection. The client closing is passed on (half-close);
        # the server then gets a while to finish answering.
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if down not in done:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(down), LINGER_S)
    finally:
        down.cancel()
        up.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(up, down, return_exceptions=True)
        await _close(server_writer)
        await _close(client_writer)


async def start_proxy(listen_host: str, listen_port: int, target_host: str, target_port: int, delay_ms: float):
    """Starts the proxy on the running loop; returns the ``asyncio.Server``."""
    delay = delay_ms / 1000.0
    target = (target_host, target_port)

    async def handle(r, w):
        # Stopping the proxy cancels open connections; end quietly (a cancelled handler makes
        # asyncio's stream callback log a spurious error).
        with contextlib.suppress(asyncio.CancelledError):
            await _handle(r, w, target, delay)

    return await asyncio.start_server(handle, listen_host, listen_port, limit=CHUNK)


class DelayProxy:
    """The proxy in a background thread: ``with DelayProxy(host, port, delay_ms) as p: p.endpoint``."""

    def __init__(self, target_host: str, target_port: int, delay_ms: float, listen_host: str = "127.0.0.1"):
        self.target_host = target_host
        self.target_port = int(target_port)
        self.delay_ms = float(delay_ms)
        self.listen_host = listen_host
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the proxy."""
        return f"http://{self.listen_host}:{self.port}"

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="s3-delay-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"delay proxy failed to start: {self._error}") from self._error
        if self.port is None:
            raise RuntimeError("delay proxy did not start within 30 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        try:
            self._stop = asyncio.Event()
            server = await start_proxy(self.listen_host, 0, self.target_host, self.target_port, self.delay_ms)
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as e:  # noqa: BLE001 - reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on (port 0: any free port)")
    ap.add_argument("--target", required=True, help="host:port of the server, e.g. moto's")
    ap.add_argument("--delay-ms", type=float, default=50.0, help="latency added to every request")
    args = ap.parse_args(argv)
    lhost, lport = _hostport(args.listen)
    thost, tport = _hostport(args.target)

    async def run() -> None:
        server = await start_proxy(lhost, lport, thost, tport, args.delay_ms)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
