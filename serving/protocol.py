"""Our uvicorn websocket protocol: going away politely, and frames written in one go."""

from __future__ import annotations

from collections.abc import Sequence

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

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
        try:
            for frame in frames:
                self.conn.send_text(frame)
        except InvalidState:  # the peer's close arrived: the connection is closing
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
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
