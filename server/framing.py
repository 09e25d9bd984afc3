"""Requests tornado cannot parse get a JSON error too.

tornado answers a request whose line or headers it cannot parse (a NUL or a
bare CR in a header, a line without a colon, garbage for a request line)
with a bare ``400`` and no body, and drops a connection whose headers pass
its limit (`HEADER_LIMIT`) without a word. Both happen before any handler exists,
inside the connection's stream, so the server watches each stream for them
and answers as every handler does: a JSON body, ``400`` or ``431``.
"""

import json

import tornado.httpserver
from tornado.iostream import UnsatisfiableReadError

from models.errors import HeadersTooLarge, ValidationError

from .errors import PLAIN, error_body, status_of

HEADER_LIMIT = 65536  # bytes of request line and headers (tornado's default, set explicitly)
TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"
_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large"}


def error_response(exc) -> bytes:
    """A whole HTTP/1.1 answer for `exc`, closing the connection."""
    status = status_of(exc)
    body = json.dumps(error_body(exc, PLAIN), separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


MALFORMED = error_response(ValidationError("malformed HTTP request: its request line or a header "
                                           "could not be parsed"))
HEADERS_TOO_LARGE = error_response(HeadersTooLarge(f"request line and headers are larger than {HEADER_LIMIT} bytes"))


class HTTPServer(tornado.httpserver.HTTPServer):
    """tornado's server, with JSON answers for requests it cannot parse.

    `stalls` (server.stalls.Stalls) drops stalled connections, in place of
    tornado's per-request timers.
    """

    def initialize(self, *args, stalls, **kwargs):
        super().initialize(*args, **kwargs)
        self.stalls = stalls
        self.conn_params.header_timeout = None
        self.conn_params.body_timeout = None

    def start_request(self, server_conn, request_conn):
        delegate = super().start_request(server_conn, request_conn)
        return self.stalls.start_request(server_conn, request_conn, delegate)

    def on_close(self, server_conn):
        super().on_close(server_conn)
        self.stalls.closed(server_conn)

    def handle_stream(self, stream, address):
        write, close = stream.write, stream.close

        def write_json_errors(data):
            # tornado writes exactly these bytes for an unparseable request, then closes.
            if data == TORNADO_BARE_400:
                data = MALFORMED
            return write(data)

        def close_with_answer(exc_info=False):
            # Headers over the limit: tornado closes from inside its read with this error.
            if isinstance(exc_info, UnsatisfiableReadError) and stream.socket is not None:
                try:
                    stream.socket.send(HEADERS_TOO_LARGE)  # small; the send buffer is empty
                except OSError:
                    pass
            return close(exc_info)

        stream.write, stream.close = write_json_errors, close_with_answer
        super().handle_stream(stream, address)
