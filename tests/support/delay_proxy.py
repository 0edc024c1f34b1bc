"""A loopback TCP proxy that adds latency, standing in for the round trips of a real S3.

Each chunk sent from the client to the target is forwarded `delay_ms` after it arrived (a latency
pipeline: chunks are not delayed one after another, so bandwidth is unchanged). Responses flow
back undelayed. Runs an asyncio loop in a daemon thread.

    proxy = DelayProxy(target_port=9000, delay_ms=10)
    with proxy as port:            # a free loopback port forwarding to 127.0.0.1:9000
        ...                        # proxy.max_active: most connections open at once
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class DelayProxy:
    def __init__(self, target_port: int, delay_ms: float = 10.0, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.delay = delay_ms / 1000.0
        self.port: int | None = None
        self.accepted = 0  # connections accepted so far
        self.active = 0  # connections open now
        self.max_active = 0  # most connections open at the same time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> int:
        """Start listening on a free loopback port and return it."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            loop = self._loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", 0)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("delay proxy did not start")
        if failure:
            raise RuntimeError(f"delay proxy did not start: {failure[0]}") from failure[0]
        return self.port

    def stop(self) -> None:
        """Close the listener and every open connection, and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():

            def shutdown() -> None:
                if self._server is not None:
                    self._server.close()
                loop.stop()

            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(shutdown)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> int:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forwarding -----------------------------------------------------------------------------
    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            try:
                target_r, target_w = await asyncio.open_connection(*self.target)
            except OSError:
                return
            try:
                await asyncio.gather(
                    self._pipe(client_r, target_w, self.delay),
                    self._pipe(target_r, client_w, 0.0),
                )
            finally:
                target_w.close()
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio logs a cancelled connection handler as an error)
        finally:
            self.active -= 1
            client_w.close()

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        """Copy reader to writer, each chunk leaving `delay` seconds after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            while True:
                try:
                    data = await reader.read(1 << 16)
                except (ConnectionError, OSError):
                    data = b""
                await queue.put((loop.time() + delay, data))
                if not data:
                    return

        async def send() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError, RuntimeError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                try:
                    writer.write(data)
                    await writer.drain()
                except (ConnectionError, OSError):
                    return

        receiver = asyncio.ensure_future(receive())
        try:
            await send()
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
