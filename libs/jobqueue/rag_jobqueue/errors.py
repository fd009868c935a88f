"""How a job's failure is classified: permanent errors never retry."""


class PermanentJobError(Exception):
    """The job can never succeed (corrupt or unsupported content): fail it at once.

    The message is shown to users as the document's `error`: write it for them.
    """


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and another took it)."""
