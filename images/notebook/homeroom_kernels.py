"""Jupyter kernels that take what they started with them.

A kernel runs in a process group of its own. When it is restarted or shut
down and exits on request, Jupyter waits for the kernel's process only: the
processes a cell forked (a fork bomb, a server a student left running) stay,
holding the sandbox's process limit, and the kernel that should replace them
cannot start. This kernel manager ends the whole group whenever Jupyter is
done with a kernel, the way a kernel killed for taking too long is ended.
"""

import os
import signal

from jupyter_client.ioloop import IOLoopKernelManager


class KernelManager(IOLoopKernelManager):
    def cleanup_resources(self, restart=False):
        pgid = getattr(self.provisioner, "pgid", None)
        if pgid and pgid != os.getpgid(0):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass  # the group is gone already
        super().cleanup_resources(restart=restart)
