"""Who is working on the database: this process's identity and whether another one lives.

Every engine registers itself (:class:`storage.records.InstanceInfo`) and heartbeats while it
runs. A lease belongs to one instance; when that instance is gone its leases are released at
once instead of running out. Gone means silent for longer than the engine's instance timeout,
or — on the same machine, where process ids can be checked — a process id that no longer
exists. The machine is named by host name *and* PID namespace, so two containers that share a
volume (and maybe a host name) never judge each other's process ids.
"""

from __future__ import annotations

import os
import socket
import uuid

from storage.records import InstanceInfo


def machine_name() -> str:
    """The host name plus this process's PID namespace (where process ids mean something)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()} {namespace}"


def this_instance(now: float) -> InstanceInfo:
    """A new identity for this process's engine."""
    return InstanceInfo(
        id=uuid.uuid4().hex, pid=os.getpid(), host=machine_name(), started_at=now, heartbeat_at=now
    )


def pid_alive(pid: int) -> bool:
    """A process with this id exists on this machine (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    return True


def dead_instances(instances: list[InstanceInfo], me: InstanceInfo) -> list[str]:
    """Instances on this machine whose process has exited (never this one)."""
    return [
        other.id
        for other in instances
        if other.id != me.id and other.host == me.host and not pid_alive(other.pid)
    ]
