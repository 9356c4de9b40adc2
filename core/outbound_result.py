"""The answer of the original outbound entry point."""


class OutboundResult(dict):
    """A dict whose keys also read as attributes.

    The original documentation's server actions read ``result.status_code``
    while this addon's callers read ``result["status_code"]``: both work, and
    the answer stays a plain dict for everything else (JSON, ``in``, ``get``).
    """

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            ) from None
