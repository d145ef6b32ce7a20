"""The web console: server-rendered pages under /ui/ on the REST daemon's port.

It reaches the cluster exactly as the REST API does, through the master's socket: pages are
built from Query calls and actions become the same opcodes, checked by the same table.
Modules: html (escaping, layout), session (logins, cookies, CSRF), forms (form bodies),
app (the page table and its checks), pages_* (one module per area), static/ (css, js).
"""
