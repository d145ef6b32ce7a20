"""The built-in allocator: Ganeti's iallocator protocol (version 2) answered in process.

``protocol.answer(request_dict)`` is the entry point; ``model`` reads the request, ``score``
holds hbal's cluster score, ``solve`` places instances. Pure: no I/O outside ``protocol.main``.
"""
