"""Finding the processes a command started, to kill one on purpose (fault-tolerance tests)."""

import os
import subprocess


def session_processes(session_pid: int, marker: str) -> list[int]:
    """PIDs of the processes in ``session_pid``'s process session whose command line contains
    ``marker`` (Ray names its actor processes ``ray::ClassName``, e.g. ``RayTrainWorker``)."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
    return [int(pid) for pid, sid, *args in (line.split(None, 2) for line in out.splitlines() if line.strip())
            if int(sid) == session_pid and args and marker in args[0]]


def listening_addresses(session_pid: int) -> list[tuple[str, int, str]]:
    """(ip, port, process name) of every TCP socket listening in ``session_pid``'s process session."""
    import psutil

    names = {}
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if os.getsid(p.info["pid"]) == session_pid:
                names[p.info["pid"]] = p.info["name"]
        except (ProcessLookupError, PermissionError):
            continue
    return [(c.laddr.ip, c.laddr.port, names[c.pid]) for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in names]


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1)."""
    import ipaddress

    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback
