"""The quickstart's Order model, which this page's samples use (not shown again)."""

from docs.snippets.quickstart.models import Order

__all__ = ["Order"]
