"""Record ids as the ``res_ids`` columns of jobs and logs store them: "7,12,40"."""


def id_list(text):
    return [int(part) for part in (text or "").split(",") if part]


def id_text(ids):
    return ",".join(str(record_id) for record_id in ids)
