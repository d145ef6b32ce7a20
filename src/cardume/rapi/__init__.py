"""The REST daemon (``cardume-rapi``): Ganeti's Remote API v2 over HTTPS, a client of the
master's socket like the CLI.

    base        what the HTTP side and the resources share: a call, a route, the error reply
    http        the HTTPS server: parsing, limits, keep-alive, one task per connection
    auth        the users file (Ganeti's format) and HTTP Basic
    master_link the master's socket, asynchronously
    routes      the path table: every resource, its methods and the access each needs
    daemon      the process: certificate, users file, socket, signals
"""
