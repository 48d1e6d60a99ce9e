"""A TCP proxy in front of a real server (PostgreSQL, Redis) that a test can cut (new
connections refused, open ones closed: the server stopped), hang (connections accepted,
nothing passes either way: the server paused or the network gone quiet) and restore.

The shared servers stay up for the other tests; only what goes through the proxy fails.
"""

from __future__ import annotations

import contextlib
import socket
import threading

POLL_SECONDS = 0.05


class FaultyLink:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.listener: socket.socket | None = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.lock = threading.Lock()
        self.links: set[_Link] = set()
        self.accepted = 0
        self.most_open = 0  # the most client connections open at once
        self._serve(self.listener)

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            links = list(self.links)
        if listener is not None:
            listener.close()
        for link in links:
            link.close()

    def hang(self) -> None:
        self.flowing.clear()

    def restore(self) -> None:
        with self.lock:
            if self.listener is None:
                self.listener = socket.create_server(("127.0.0.1", self.port))
                self._serve(self.listener)
        self.flowing.set()

    def reset_counts(self) -> None:
        with self.lock:
            self.accepted = 0
            self.most_open = len(self.links)

    def close(self) -> None:
        self.flowing.set()
        self.cut()

    def _serve(self, listener: socket.socket) -> None:
        # A timeout on accept: a listener closed by ``cut`` is noticed (a blocked accept on
        # Linux would not wake up).
        listener.settimeout(POLL_SECONDS)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                if self.listener is not listener:
                    return
                continue
            except OSError:  # closed by cut()
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            link = _Link(self, client, server)
            with self.lock:
                self.accepted += 1
                self.links.add(link)
                self.most_open = max(self.most_open, len(self.links))
            link.start()

    def _closed(self, link: _Link) -> None:
        with self.lock:
            self.links.discard(link)


class _Link:
    """One client connection and its server connection, a thread each way."""

    def __init__(self, proxy: FaultyLink, client: socket.socket, server: socket.socket):
        self.proxy, self.client, self.server = proxy, client, server
        self.closing = threading.Event()

    def start(self) -> None:
        for source, sink in ((self.client, self.server), (self.server, self.client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        if self.closing.is_set():
            return
        self.closing.set()
        for end in (self.client, self.server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
        self.proxy._closed(self)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        # While the proxy hangs, bytes are held, not passed; reading on meanwhile notices a
        # client that gives up and closes its end.
        held = bytearray()
        source.settimeout(POLL_SECONDS)
        try:
            while not self.closing.is_set():
                if held and self.proxy.flowing.is_set():
                    sink.sendall(held)
                    held.clear()
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    if self.proxy.flowing.is_set() and held:
                        sink.sendall(held)
                    break
                held += data
        except OSError:
            pass
        finally:
            self.close()
