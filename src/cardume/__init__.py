"""cardume: a cluster virtual-machine manager that speaks Ganeti."""

__version__ = "0.1.0"
