from django.db import models


class Execution(models.Model):
    """One execution of a step body, committed by the body itself so it survives kill -9."""

    run_id = models.UUIDField()
    step = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)


class Account(models.Model):
    """A row written by atomic steps."""

    owner = models.CharField(max_length=50)
