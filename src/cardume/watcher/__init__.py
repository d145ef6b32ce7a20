"""cardume-watcher: one pass of Ganeti's watcher on the master node (see watcher.main)."""
