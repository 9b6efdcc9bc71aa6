"""A shop app as the docs show it."""
