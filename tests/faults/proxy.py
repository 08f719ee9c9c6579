"""A TCP proxy on 127.0.0.1 that can make the AWS endpoint disappear and come back (a broker outage).

While cut, it closes every open connection and refuses new ones, as a vanished endpoint does; the
moto server behind it keeps its state, as SQS keeps its messages through an outage.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from infra.local.server import free_port


class OutageProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`; `cut()` and `restore()` the endpoint."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> OutageProxy:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="outage-proxy", daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            source.settimeout(None)
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._connections.discard(sock)

    def cut(self) -> None:
        """The endpoint disappears: nothing listens, open connections are reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()

    def restore(self) -> None:
        """The endpoint is back on the same port."""
        self.start()

    def stop(self) -> None:
        self.cut()
