"""Where the service listens, and the rule that an address other machines can reach needs a token.

``engage serve`` listens on loopback unless told otherwise and refuses any other address without a token
(``--insecure`` to serve without one anyway) before it starts a worker. A built Bento is served by ``bentoml serve``
without ``engage serve`` in front, and its container listens on ``0.0.0.0`` (``BENTOML_HOST`` in
``serving/bentofile.yaml``): each worker therefore applies the same rule to the socket it was handed
(:func:`check_exposure`), and a container started without ``ENGAGE_API_TOKEN`` / ``ENGAGE_API_TOKEN_FILE`` (or
``ENGAGE_INSECURE=1``) stops with the reason instead of serving customer data to anyone who can reach it.
"""

from __future__ import annotations

import ipaddress
import os
import socket

INSECURE_HINT = "set ENGAGE_API_TOKEN or ENGAGE_API_TOKEN_FILE, or ENGAGE_INSECURE=1 to serve without authentication"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def bound_host(fd: int) -> str | None:
    """The address the listening socket at file descriptor ``fd`` is bound to (None: not an internet socket)."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        return str(sock.getsockname()[0])
    except OSError:
        return None
    finally:
        sock.close()


def exposure_problem(host: str, *, token: str | None, insecure: bool) -> str | None:
    """Why the service must not listen on ``host`` as configured (None: it may)."""
    if is_loopback(host) or token is not None or insecure:
        return None
    return f"the service listens on {host}, which accepts connections from other machines, but no API token is set"


def check_exposure(fd: int | None, *, token: str | None, insecure: bool) -> str | None:
    """In a worker: the error message when the socket it serves on breaks the rule (None: fine, or unknown)."""
    host = bound_host(fd) if fd is not None else None
    if host is None:
        return None
    problem = exposure_problem(host, token=token, insecure=insecure)
    return None if problem is None else f"{problem}: {INSECURE_HINT}"
