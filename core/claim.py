"""Which due outbound jobs a worker may claim: changes of a record go out in order.

Plain Python, no ORM: the delivery worker reads the unfinished jobs a window
at a time and asks ``select_claimable`` which of them to claim.
"""


def select_claimable(rows, wanted, seen):
    """Pick up to ``wanted`` due jobs of ``rows`` that no older job holds back.

    ``rows`` are ``(job_id, config_id, record_ids, is_due)`` of unfinished jobs,
    walked in id order.  A due job is held back by any older one (due, waiting
    or running) of its configuration that shares one of its records; ``seen``
    holds the (configuration, record) pairs of the older jobs walked before
    these rows, and is left unchanged.  Returns the ids picked, in id order,
    and the pairs of ``rows``, for the caller to add to ``seen``.
    """
    chosen, pairs = [], set()
    for job_id, config_id, record_ids, is_due in sorted(rows, key=lambda row: row[0]):
        keys = {(config_id, record_id) for record_id in record_ids}
        if is_due and len(chosen) < wanted and not (keys & seen or keys & pairs):
            chosen.append(job_id)
        pairs |= keys
    return chosen, pairs
