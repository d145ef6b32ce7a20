"""The master side: the master daemon, its LUXI socket server, queries and cluster bootstrap.

Nothing below this package (cmdlib, config, jobs, rpc, node) imports it; the CLI reaches the
running master only through :mod:`cardume.luxi`, and imports :mod:`bootstrap` for the commands
that run before there is a master (``gnt-cluster init``, ``master-failover``).
"""
