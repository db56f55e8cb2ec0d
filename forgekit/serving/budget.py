"""One memory budget for the requests in flight, shared by the REST and gRPC front ends.

A request is charged before it allocates (its body, or the tensors its message decodes to,
string lengths included), again for its answer once that exists, and keeps its charge until
the answer has been sent, so a client that never reads its answer holds budget, not the
server. A request the budget cannot cover now is refused at once (UNAVAILABLE, HTTP 503:
retry later); one larger than the whole budget can never run (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import threading

from forgekit.serving.error_codes import ServingError

# A JSON body becomes Python lists, floats and strings while it is decoded: measured 7x its
# size for rows of four floats, 17x for rows of one, 27x for [[[x]]]-style nesting. The
# budget charges 16x; the tensors made from the tree are smaller than the tree.
JSON_FACTOR = 16
# A gRPC request's tensors exist twice while the graph runs (numpy and TensorFlow's copy),
# and outputs of the same size are common: charged at 3x their decoded size.
TENSOR_FACTOR = 3


def default_limit(max_request_bytes: int) -> int:
    """The budget for a server whose largest request is ``max_request_bytes``.

    Room for one maximum-size JSON body (and its answer) or several smaller requests.
    """
    return (JSON_FACTOR + 4) * max_request_bytes


class MemoryBudget:
    """Bytes that the requests in flight may hold together (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def ticket(self) -> Ticket:
        """A new, empty charge account for one request."""
        return Ticket(self)

    def _take(self, ticket: Ticket, size: int, force: bool) -> None:
        with self._lock:
            if ticket.closed:  # e.g. a cancelled RPC whose handler is still running
                return
            if not force:
                if size > self.limit:
                    raise ServingError(
                        "RESOURCE_EXHAUSTED", f"The request needs about {size} bytes of "
                        f"memory, more than the server's budget of {self.limit} bytes for "
                        "requests in flight; send smaller requests")
                if self.used + size > self.limit:
                    raise ServingError(
                        "UNAVAILABLE", f"Server busy: the requests in flight hold "
                        f"{self.used} of the {self.limit} bytes of memory the server "
                        "allows them; retry later")
            self.used += size
            ticket.held += size

    def _close(self, ticket: Ticket) -> None:
        with self._lock:
            self.used -= ticket.held
            ticket.held, ticket.closed = 0, True


class Ticket:
    """What one request holds of a :class:`MemoryBudget`, released once by :meth:`close`."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0
        self.closed = False

    def charge(self, size: int, *, force: bool = False) -> None:
        """Add ``size`` bytes, or raise ServingError if the budget cannot cover them.

        ``force`` charges memory that is already allocated (an answer, built): it is
        counted against the requests that come next, never refused. Once closed, a ticket
        charges nothing.
        """
        self._budget._take(self, size, force)

    def close(self) -> None:
        """Give back everything held; later charges are ignored (safe to call twice)."""
        self._budget._close(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
