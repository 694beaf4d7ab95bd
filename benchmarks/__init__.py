"""The aionlmmap benchmark suite: aionlmmap side by side with C, the socket
module, pyroute2 and iproute2, in throwaway network namespaces.

Run ``python3 -m benchmarks --help``; docs/benchmarks.md explains each
scenario and holds the latest table. Nothing here touches the host's own
network namespace: every scenario creates its namespaces and deletes them
in ``finally``.
"""
