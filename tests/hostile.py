"""A server that misbehaves on purpose, below HTTP: for the client's and the web server's tests of what a
hostile or broken API does to them."""

import socket
import threading


class HostileServer:
    """A socket server that answers every connection with `behaviour(connection)` until stopped."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.stopped = threading.Event()
        self.answered = 0  # requests read so far
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def serve(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.answer, args=(connection,), daemon=True).start()

    def answer(self, connection):
        try:
            request = connection.recv(65536)
            with self._changed:
                self.answered += 1
                self._changed.notify_all()
            self.behaviour(connection, self.stopped, request)
        except OSError:
            pass
        finally:
            connection.close()

    def wait_for_requests(self, count: int, timeout: float = 10) -> bool:
        """Block until `count` requests have reached the server (or the timeout)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.answered >= count, timeout)

    def stop(self):
        self.stopped.set()
        self.thread.join()
        self.listener.close()


def silent(connection, stopped, request):
    """Read the request, then never answer."""
    stopped.wait(60)


def echo_authorization(status: int = 200):
    """A behaviour that answers `status` with a text body quoting the request's credentials, as some
    debugging proxies and broken servers do."""

    def echo(connection, stopped, request):
        quoted = b"\n".join(
            line for line in request.split(b"\r\n") if line.lower().startswith((b"authorization", b"api-key"))
        )
        body = b"debug: " + quoted
        reason = b"OK" if status < 300 else b"Error"
        head = b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % (
            status,
            reason,
            len(body),
        )
        connection.sendall(head + body)

    return echo
