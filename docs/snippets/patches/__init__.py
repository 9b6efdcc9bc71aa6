"""A shop app as the docs show it; the stand-in services its samples call come from here.

``from . import mailer`` in a sample finds the stand-in in docs/snippets/stand_ins/.
"""

from docs.snippets.stand_ins import mailer

__all__ = ["mailer"]
