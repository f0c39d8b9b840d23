"""Our uvicorn websocket protocol: going away politely, and frames written in one go."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

from schema.cohorts import SEND_TEXTS


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, closing with 1001 (going away) when the process stops,
    instead of 1012 (service restart): clients should reconnect, to another process.

    It also offers the app the `SEND_TEXTS` scope extension (see schema/cohorts.py): encoded
    text frames written now, in one transport write, with the write buffer's size to tell a
    slow socket by. ASGI's `websocket.send` costs a task switch, an event dict and a write per
    frame, which is most of what fanning one count out to ten thousand sockets costs."""

    async def run_asgi(self) -> None:
        self.scope.setdefault("extensions", {})[SEND_TEXTS] = {
            "send_texts": self.send_texts,
            "write_buffer_size": self.transport.get_write_buffer_size,
        }
        await super().run_asgi()

    def send_texts(self, frames: Sequence[bytes]) -> bool:
        """Write UTF-8 encoded text frames at once; False, writing nothing, once the socket is
        closing (or not yet open), as `websocket.send` would then refuse."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return False
        conn = self.conn
        if not conn.extensions and not conn.expect_continuation_frame:
            # Nothing to compress, nothing in progress: a server's text frame is its header
            # and the text, unmasked, the same bytes for every socket the text goes to.
            if conn.state is not State.OPEN:  # the peer's close arrived: closing
                return False
            self.transport.write(b"".join(map(_text_frame, frames)))
            return True
        try:
            for frame in frames:
                conn.send_text(frame)
        except InvalidState:  # the peer's close arrived: the connection is closing
            return False
        self.transport.write(b"".join(conn.data_to_send()))
        return True

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent:
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001})
            self.conn.send_close(1001, "server shutting down")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        super().shutdown()


@lru_cache(maxsize=256)
def _text_frame(text: bytes) -> bytes:
    """An unmasked, final text frame of `text` (RFC 6455 5.2), as websockets writes it: a wave
    sends one count to thousands of sockets, most under the same operation id, so the frame
    is made once."""
    length = len(text)
    if length < 126:
        return struct.pack("!BB", 0x81, length) + text
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + text
    return struct.pack("!BBQ", 0x81, 127, length) + text
