from django.db import models


class Execution(models.Model):
    """One execution of a step body, committed by the body itself so it survives kill -9."""

    run_id = models.UUIDField()
    step = models.CharField(max_length=50)
    pid = models.IntegerField(default=0)
    # time.time() in the worker process: comparable across processes on one machine.
    at = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.step} of {self.run_id}"


class Account(models.Model):
    """A row written by atomic steps."""

    owner = models.CharField(max_length=50)

    def __str__(self):
        return self.owner
