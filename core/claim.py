"""Which due outbound jobs a worker may claim: changes of a record go out in order.

Plain Python, no ORM: the delivery worker reads the unfinished jobs a window
at a time and asks ``select_claimable`` which of them to claim, and
``earliest_claimable`` how long it may wait for the next one.
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


def earliest_claimable(rows):
    """When the first job that can be claimed falls due, or None.

    ``rows`` are ``(job_id, config_id, record_ids, is_pending, due_at)`` of the
    unfinished jobs (pending or running).  A pending job held back by an older
    unfinished job of its configuration sharing one of its records cannot be
    claimed before that one finishes, so its own due time says nothing: only
    the jobs nothing holds back count.
    """
    earliest, seen = None, set()
    for _job_id, config_id, record_ids, is_pending, due_at in sorted(rows, key=lambda row: row[0]):
        keys = {(config_id, record_id) for record_id in record_ids}
        if is_pending and not keys & seen and (earliest is None or due_at < earliest):
            earliest = due_at
        seen |= keys
    return earliest
