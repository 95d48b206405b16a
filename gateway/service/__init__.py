"""``gateway serve`` at run time: building servers from settings, running, checking."""
