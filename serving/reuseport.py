"""Even load over BentoML workers: each worker listens on its own ``SO_REUSEPORT`` socket.

``bentoml serve`` (1.4) opens one listening socket in its supervisor and every worker accepts from that
shared socket. Linux then hands nearly every new connection to whichever worker wakes first, so a client
that opens its connections at once (a CRM's connection pool, the load test) lands on one worker while the
others idle: measured here with two workers, 3,000 of 3,200 requests went to one (BentoML issue #5426,
open; the upstream pull request #5557 with the same fix was closed unmerged).

:func:`listen_on_own_socket` runs in each worker before it starts serving (the service's ``__init__``
runs in the ASGI lifespan, before uvicorn registers its socket). It opens a socket on the same address
with ``SO_REUSEPORT``, puts it in place of the shared socket's file descriptor (``dup2``), and stops the
shared socket from listening, so the kernel spreads connections over the workers' sockets by a hash of
the connection's addresses. A restarted worker does the same. Linux only; anything unexpected leaves the
shared socket as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence

logger = logging.getLogger("engage.serving")

BACKLOG = 2048


def worker_fd(argv: Sequence[str]) -> int | None:
    """The listening socket's file descriptor a BentoML worker was started with (``--fd N``), if any."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--fd" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--fd="):
            value = arg.split("=", 1)[1]
        else:
            continue
        try:
            return int(value)
        except ValueError:
            return None
    return None


def listen_on_own_socket(fd: int, backlog: int = BACKLOG) -> bool:
    """Replace the shared listening socket at ``fd`` by this process's own ``SO_REUSEPORT`` socket.

    Returns whether the replacement is in place (False: not Linux, ``fd`` is not a listening TCP socket,
    or the kernel refused; the shared socket then serves as before).
    """
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return False
    try:
        shared = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    try:
        if shared.type != socket.SOCK_STREAM or shared.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        if not shared.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and not shared.getsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEPORT
        ):
            return False  # neither listening nor already switched by a sibling worker
        address = shared.getsockname()
        # The shared socket must allow port sharing before another socket may bind its address.
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        own = socket.socket(shared.family, socket.SOCK_STREAM)
        try:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            own.bind(address)
            own.listen(backlog)
            own.setblocking(False)
            os.dup2(own.fileno(), fd)
        except OSError as exc:
            logger.warning("own listening socket not used (%s); serving on the shared socket", exc)
            return False
        finally:
            own.close()
        # Nobody accepts from the shared socket any more: take it out of the kernel's choice. A connection
        # queued on it this instant is reset (start-up only, before the service reports ready).
        if shared.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            with contextlib.suppress(OSError):
                shared.shutdown(socket.SHUT_RDWR)
        return True
    finally:
        shared.close()
