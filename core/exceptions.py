"""Errors raised by the plain-Python core and the mapping engine."""


class MappingError(ValueError):
    """A value cannot be converted between JSON and an Odoo field.

    ``line_id`` names the configuration line at fault and ``index`` the item of
    a batch, so that callers can point the integrator at the exact culprit.
    """

    def __init__(self, message, line_id=None, index=None):
        super().__init__(message)
        self.message = message
        self.line_id = line_id
        self.index = index

    def __str__(self):
        return self.message


class ScriptTimedOut(MappingError):
    """A line's Python Script ran out of time: its budget, or the delivery
    run's end.  It may well succeed later (a loaded server), so the outbound
    queue retries it instead of giving up."""
