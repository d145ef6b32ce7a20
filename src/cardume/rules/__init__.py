"""Rules both sides apply: the master checks a request with them before it sends a node
call, and the node daemon checks the same call with them again.

Parameter types, hypervisor parameters, volume names, disk-template capabilities, the
migration-cleanup decision. Modules here import only the model (constants, errors, objects),
never cmdlib, master, node or cli.
"""
