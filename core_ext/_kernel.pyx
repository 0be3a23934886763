# Matching kernel: eligibility, capacity and agent scoring over struct-of-arrays views.
# Same semantics, floating-point operation order and tie-breaks as reference.py.
# Directives (boundscheck, wraparound, ...) are set once in setup.py.

from libc.stdint cimport int32_t, int64_t, uint8_t


cdef inline int64_t _committed_units(
    const int32_t[:, ::1] units,
    const int32_t[:, ::1] counts,
    const int32_t[:, ::1] intr,
    Py_ssize_t slot,
    int p,
    int cls,
    int64_t extra,
    bint adding,
) noexcept nogil:
    cdef Py_ssize_t n_classes = units.shape[1]
    cdef Py_ssize_t d
    cdef int64_t cls_bit = (<int64_t>1) << cls
    cdef int64_t present = 0
    cdef int64_t total = extra
    for d in range(n_classes):
        if counts[slot, d] > 0:
            present |= (<int64_t>1) << d
    if adding and (intr[p, cls] & present & ~cls_bit):
        return -1
    for d in range(n_classes):
        if not (present & ((<int64_t>1) << d)):
            continue
        if adding and d != cls and (intr[p, d] & cls_bit):
            continue
        total += units[slot, d]
    return total


cdef inline bint _skills_ok(
    const uint8_t[:, ::1] levels,
    Py_ssize_t slot,
    const int32_t[::1] req_cols,
    const uint8_t[::1] req_levels,
) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(req_cols.shape[0]):
        if levels[slot, req_cols[j]] < req_levels[j]:
            return False
    return True


def committed_units(table, Py_ssize_t slot, int cls, int64_t extra, bint adding):
    """Units the agent would be committed to with ``extra`` more of ``cls`` (see reference)."""
    cdef const int32_t[::1] profile = table.profile
    return _committed_units(table.units, table.counts, table.intr, slot, profile[slot], cls,
                         extra, adding)


def fits(table, Py_ssize_t slot, int cls, int64_t extra, bint adding):
    """True when ``extra`` more units of ``cls`` (a new item if ``adding``) fit the agent."""
    cdef const int32_t[::1] profile = table.profile
    cdef const int32_t[::1] budget = table.budget
    cdef const int32_t[:, ::1] counts = table.counts
    cdef const int32_t[:, ::1] cmax = table.cmax
    cdef int p = profile[slot]
    if adding and counts[slot, cls] >= cmax[p, cls]:
        return False
    cdef int64_t active = _committed_units(table.units, counts, table.intr, slot, p, cls, extra,
                                        adding)
    return 0 <= active <= budget[p]


def agent_eligible(table, Py_ssize_t slot, const int32_t[::1] req_cols,
                   const uint8_t[::1] req_levels, int cls, int kind_mask):
    """Can this agent be offered a new item of ``cls`` needing these skills, right now?"""
    cdef const uint8_t[::1] routable = table.routable
    cdef const uint8_t[::1] kind = table.kind
    if not routable[slot] or not (kind[slot] & kind_mask):
        return False
    if not _skills_ok(table.levels, slot, req_cols, req_levels):
        return False
    cdef const int32_t[::1] profile = table.profile
    cdef const int32_t[:, ::1] cost = table.cost
    cdef int p = profile[slot]
    return fits(table, slot, cls, cost[p, cls], True)


def best_agent(table, const int32_t[::1] cand, const int32_t[::1] req_cols,
               const uint8_t[::1] req_levels, int cls, int kind_mask,
               const int32_t[::1] excluded, Py_ssize_t preferred, int64_t now,
               int64_t offer_counter, const double[::1] weights):
    """The best eligible agent among ``cand`` for one conversation: ``(slot, score)``."""
    cdef const uint8_t[::1] routable = table.routable
    cdef const uint8_t[::1] kind = table.kind
    cdef const int64_t[::1] seq = table.seq
    cdef const uint8_t[:, ::1] levels = table.levels
    cdef const int32_t[:, ::1] units = table.units
    cdef const int32_t[:, ::1] counts = table.counts
    cdef const int32_t[::1] profile = table.profile
    cdef const int32_t[::1] budget = table.budget
    cdef const int32_t[:, ::1] cost = table.cost
    cdef const int32_t[:, ::1] cmax = table.cmax
    cdef const int32_t[:, ::1] intr = table.intr
    cdef const int64_t[::1] idle_since = table.idle_since
    cdef const int64_t[::1] last_offer = table.last_offer
    cdef Py_ssize_t n_req = req_cols.shape[0]
    cdef Py_ssize_t best = -1
    cdef double best_score = 0.0
    cdef int64_t best_seq = 0
    cdef Py_ssize_t i, j, k, slot
    cdef int p
    cdef int64_t active, total, b
    cdef bint skip
    cdef double proficiency, idle_s, spare, sticky, rr_gap, score
    with nogil:
        for i in range(cand.shape[0]):
            slot = cand[i]
            skip = False
            for k in range(excluded.shape[0]):
                if excluded[k] == slot:
                    skip = True
                    break
            if skip or not routable[slot] or not (kind[slot] & kind_mask):
                continue
            if not _skills_ok(levels, slot, req_cols, req_levels):
                continue
            p = profile[slot]
            if counts[slot, cls] >= cmax[p, cls]:
                continue
            active = _committed_units(units, counts, intr, slot, p, cls, cost[p, cls], True)
            b = budget[p]
            if active < 0 or active > b:
                continue
            proficiency = 0.0
            if n_req > 0:
                total = 0
                for j in range(n_req):
                    total += levels[slot, req_cols[j]]
                proficiency = total / (5.0 * n_req)
            idle_s = (now - idle_since[slot]) / 1000.0
            spare = (b - active) / <double>b
            sticky = 1.0 if slot == preferred else 0.0
            rr_gap = <double>(offer_counter - last_offer[slot])
            score = weights[0] * proficiency
            score = score + weights[1] * idle_s
            score = score + weights[2] * spare
            score = score + weights[3] * sticky
            score = score + weights[4] * rr_gap
            if best < 0 or score > best_score or (score == best_score and seq[slot] < best_seq):
                best = slot
                best_score = score
                best_seq = seq[slot]
    return best, best_score
