"""``python -m tests.e2e.unprivileged ARGS...``: run ``python ARGS...`` without file-permission
overrides, so file modes bind this process even when the tests run as root.

Root ignores a file's mode (``CAP_DAC_OVERRIDE``): a database made read-only with chmod stays
writable to it. Tests that make a file read-only start the bot through this launcher, which
drops the two overriding capabilities from its bounding set and then becomes the bot by exec
(same pid). Without root nothing is dropped and the modes bind anyway.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def drop_file_overrides() -> None:
    """Remove the capabilities that bypass file modes from this process and its execs."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl(PR_CAPBSET_DROP, {capability}): {os.strerror(error)}")


def main() -> None:
    """Drop, then exec the same interpreter with the remaining arguments."""
    drop_file_overrides()
    # Same pid, so the test can signal and limit the bot; the arguments are the test's own.
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])  # noqa: S606


if __name__ == "__main__":
    main()
