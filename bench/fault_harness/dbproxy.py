"""A TCP proxy between a web server and our PostgreSQL that can lose the database's answer
to an ad's COMMIT: the ad is saved, the web server never hears so.

It reads PostgreSQL's wire protocol (version 3) just enough to follow each connection: the
untyped messages before the start-up (and the one-byte answers to SSL and GSS requests),
then a type byte and a length per message. A transaction that saved an Idempotency-Key
(``INSERT INTO "ads_idempotencykey"``: an ad's post) and then sends ``COMMIT`` is, while
the proxy is armed, let through to the server; the server's answer is kept from the client
until the server said it is ready for the next query (the commit is done), and both ends
are closed. The client's driver sees its connection lost during the commit, as when the
database or the network goes away at that moment, and its request gets a ``503``.
"""

from __future__ import annotations

import contextlib
import socket
import threading

KEY_INSERT = b'INSERT INTO "ads_idempotencykey"'
# The untyped requests a client may send before its start-up message.
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
QUERY, PARSE = ord("Q"), ord("P")
COMMAND_COMPLETE, READY_FOR_QUERY = ord("C"), ord("Z")


class CommitAnswerLoser:
    """Listens on ``port`` for clients of the PostgreSQL on ``upstream_port``."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = 0  # ad commits still to lose the answer of
        self.lost = 0  # commits done whose answer the client never got
        self.lock = threading.Lock()
        self.links: list[_Link] = []

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, commits: int) -> None:
        with self.lock:
            self.armed += commits

    def take(self) -> bool:
        """Whether to lose this commit's answer (one armed commit fewer)."""
        with self.lock:
            if self.armed <= 0:
                return False
            self.armed -= 1
            return True

    def count_lost(self) -> None:
        with self.lock:
            self.lost += 1

    def close(self) -> None:
        self.listener.close()
        for link in self.links:
            link.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()  # the client sees the database unreachable
                continue
            server.settimeout(None)
            link = _Link(self, client, server)
            self.links.append(link)
            link.start()


class _Link:
    """One client's connection and the server's, each way in a thread of its own."""

    def __init__(self, proxy: CommitAnswerLoser, client: socket.socket, server: socket.socket):
        self.proxy, self.client, self.server = proxy, client, server
        self.from_client = bytearray()
        self.from_server = bytearray()
        self.started = False  # the start-up message went by: typed messages from here on
        self.singles = 0  # one-byte answers the server owes (to SSL and GSS requests)
        self.saved_key = False  # this transaction saved an Idempotency-Key
        self.losing = False  # keeping the server's answer to a COMMIT from the client
        self.committed = False

    def start(self) -> None:
        for pump in (self._client_to_server, self._server_to_client):
            threading.Thread(target=pump, daemon=True).start()

    def close(self) -> None:
        for end in (self.client, self.server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def _client_to_server(self) -> None:
        try:
            while data := self.client.recv(65536):
                self.from_client += data
                self._read_client()  # before forwarding: the answer must find ``losing`` set
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            self.close()

    def _read_client(self) -> None:
        buf = self.from_client
        while True:
            if not self.started:
                if len(buf) < 8 or len(buf) < int.from_bytes(buf[:4], "big"):
                    return
                code = int.from_bytes(buf[4:8], "big")
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    self.singles += 1
                elif code != CANCEL_REQUEST:
                    self.started = True
                del buf[: int.from_bytes(buf[:4], "big")]
                continue
            if len(buf) < 5 or len(buf) < 1 + int.from_bytes(buf[1:5], "big"):
                return
            end = 1 + int.from_bytes(buf[1:5], "big")
            kind, body = buf[0], bytes(buf[5:end])
            del buf[:end]
            self._saw(kind, body)

    def _saw(self, kind: int, body: bytes) -> None:
        if kind not in (QUERY, PARSE):
            return
        if KEY_INSERT in body:
            self.saved_key = True
            return
        text = body.rstrip(b"\0").strip().upper()
        if kind == QUERY and text in (b"COMMIT", b"ROLLBACK"):
            self.losing = text == b"COMMIT" and self.saved_key and self.proxy.take()
            self.saved_key = False

    def _server_to_client(self) -> None:
        try:
            while data := self.server.recv(65536):
                self.from_server += data
                if not self._pass_server_messages():
                    return
        except OSError:
            pass
        finally:
            self.close()

    def _pass_server_messages(self) -> bool:
        """Forward the server's complete messages, or keep them while losing a commit's
        answer; False once that answer is over (the link is then closed)."""
        buf = self.from_server
        while buf:
            if self.singles:
                self.singles -= 1
                self.client.sendall(bytes(buf[:1]))
                del buf[:1]
                continue
            if len(buf) < 5 or len(buf) < 1 + int.from_bytes(buf[1:5], "big"):
                return True
            end = 1 + int.from_bytes(buf[1:5], "big")
            message = bytes(buf[:end])
            del buf[:end]
            if not self.losing:
                self.client.sendall(message)
            elif message[0] == COMMAND_COMPLETE and message[5:].startswith(b"COMMIT"):
                self.committed = True
            elif message[0] == READY_FOR_QUERY:
                if self.committed:
                    self.proxy.count_lost()
                return False
        return True
