"""Finding free loopback ports and waiting for them to answer."""

import random
import socket


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port the kernel picked
    (bind to 0) can meanwhile become the source port of some outgoing connection, and the server
    that was to listen on it then fails with 'Address already in use'. None is handed out twice."""
    low = 20000
    high = max(low + 1000, _ephemeral_low())
    for _ in range(200):
        port = random.randrange(low, high)
        if port not in _HANDED_OUT and port_is_free(port):
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens there. SO_REUSEADDR as the servers set it: a closed connection still in
    TIME_WAIT (say, from the previous run) does not count as busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
