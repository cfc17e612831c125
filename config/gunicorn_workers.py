"""gunicorn's threaded worker with a deadline for each request's headers.

A gthread worker hands a connection to one of its threads as soon as the
client sends its first byte, and the thread then waits, with no time limit,
until the request's headers are complete. A client that sends one header line
every few seconds (a "slow loris") holds a thread for as long as it likes, and
``threads`` such clients hold the worker. This worker gives the headers
SLUICE_GUNICORN_HEADER_TIMEOUT seconds from the moment a thread takes the
connection: then the connection is shut down, which wakes the thread and
frees it. The request's body, and the application's own time, are not
limited. See docs/operations.md.
"""
import os
import socket
import time

from gunicorn.workers import gthread

__all__ = ["ThreadWorker"]

HEADER_TIMEOUT = float(os.environ.get("SLUICE_GUNICORN_HEADER_TIMEOUT", "20"))


class ThreadWorker(gthread.ThreadWorker):
    def init_process(self):
        self.reading = {}  # connection -> when a thread began waiting for its request's headers
        super().init_process()

    def handle(self, conn):
        self.reading[conn] = time.monotonic()
        try:
            return super().handle(conn)
        finally:
            self.reading.pop(conn, None)

    def handle_request(self, req, conn):
        self.reading.pop(conn, None)  # the headers are in; from here on it is the application's time
        return super().handle_request(req, conn)

    def murder_keepalived(self, force=False):
        """Besides gunicorn's own clean-up (run about once a second): drop connections whose headers are late."""
        super().murder_keepalived(force)
        cutoff = time.monotonic() - HEADER_TIMEOUT
        for conn, started in list(self.reading.items()):
            if started < cutoff and self.reading.pop(conn, None) is not None:
                self.log.info("Dropping %s: its request's headers took more than %s s.", conn.client, HEADER_TIMEOUT)
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by its thread
