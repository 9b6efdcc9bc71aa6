"""A shop app as the django.tasks guide shows it; ``from . import mailer`` finds the
stand-in in docs/snippets/stand_ins/."""

from docs.snippets.stand_ins import mailer

__all__ = ["mailer"]
