"""When background work commits as it goes."""

import threading


def auto_commit():
    """Whether long background work (crons, cleanups) commits between its batches.

    Always, except inside tests, whose transaction must stay open: Odoo's idiom
    (``mail.mail.process_email_queue``, ``res.users.deletion._gc_portal_users``).
    """
    return not getattr(threading.current_thread(), "testing", False)
