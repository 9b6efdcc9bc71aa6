"""A shop app as the docs show it; the stand-in services its samples call come from here.

``from . import mailer, payments`` in a sample finds the stand-ins in docs/snippets/stand_ins/.
"""

from docs.snippets.stand_ins import mailer, payments

__all__ = ["mailer", "payments"]
