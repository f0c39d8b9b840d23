"""How the process serves: the GraphQL endpoint, middleware, the websocket protocol, and the
collector's tuning. `server.py` wires these up."""

from .collector import keep_connections_out_of_the_collector
from .endpoint import Answer, GraphQLApp
from .middleware import BodyLimit, DatabaseContext
from .protocol import GoingAwayWebSocketProtocol

__all__ = [
    "Answer",
    "BodyLimit",
    "DatabaseContext",
    "GoingAwayWebSocketProtocol",
    "GraphQLApp",
    "keep_connections_out_of_the_collector",
]
