"""The master side: the master daemon, its LUXI socket server and client, queries and
cluster bootstrap.

Nothing below this package (cmdlib, config, jobs, rpc, node) imports it. The CLI, vcluster
and bench reach the running master only through :mod:`client` (standard library only: it
imports nothing of the daemon, and costs the CLI no start-up time), and the CLI imports
:mod:`bootstrap` for the commands that run before there is a master (``gnt-cluster init``,
``master-failover``).
"""
