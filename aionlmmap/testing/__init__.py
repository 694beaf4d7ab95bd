"""Test your netlink code without a pre-4.6 kernel: a simulated kernel.

:class:`SimulatedKernel` implements the netlink core of Linux 4.4 with
``CONFIG_NETLINK_MMAP`` in user space (every fact of DESIGN.md section 1,
checked on a real 4.4.1 kernel), so the ``kernel`` ring backend runs against
it unchanged; only the syscalls are redirected. It also injects faults real
kernels make hard to provoke::

    from aionlmmap.testing import SimulatedKernel

    async def test_my_monitor_survives_an_overrun():
        kernel = SimulatedKernel()
        async with kernel.open(NETLINK_ROUTE, groups=[RTNLGRP_LINK]) as ring:
            kernel.inject_overrun(kernel.sockets()[0])
            with pytest.raises(aionlmmap.OverrunError):
                await anext(aiter(ring))

See docs/testing.md for the catalogue of facts and faults.
"""

from __future__ import annotations

from ._kernel import KernelError, Request, ReservedFrame, SimulatedKernel
from ._rtnl import Link, RtnlModel
from ._socket import Queued, SimulatedSocket, SimulatedSyscalls

__all__ = [
    "KernelError",
    "Link",
    "Queued",
    "Request",
    "ReservedFrame",
    "RtnlModel",
    "SimulatedKernel",
    "SimulatedSocket",
    "SimulatedSyscalls",
]
