# distutils: language = c++
# Matching kernel: capacity, eligibility and scoring over struct-of-arrays views, the
# agent bitsets that keep candidate sets small, and the bucketed queue index.
# Same semantics, floating-point operation order and tie-breaks as reference.py.
# Directives (boundscheck, wraparound, ...) are set once in setup.py.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cython.operator cimport dereference as deref
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint8_t, uint64_t
from libcpp.algorithm cimport sort
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

cimport numpy as cnp

cnp.import_array()


cdef extern from *:
    int __builtin_ctz(unsigned int) nogil
    int __builtin_ctzll(unsigned long long) nogil


# --- capacity --------------------------------------------------------------------------


cdef inline int64_t _committed(
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


cdef class _Table:
    """Typed views of one AgentTable, cached on it until its arrays are reallocated."""

    cdef public object version
    cdef uint8_t[::1] alive
    cdef uint8_t[::1] routable
    cdef uint8_t[::1] present
    cdef uint8_t[::1] kind
    cdef int64_t[::1] seq
    cdef const uint8_t[:, ::1] levels
    cdef int32_t[:, ::1] units
    cdef int32_t[:, ::1] counts
    cdef int32_t[::1] profile
    cdef const int32_t[::1] budget
    cdef const int32_t[:, ::1] cost
    cdef const int32_t[:, ::1] cmax
    cdef const int32_t[:, ::1] intr
    cdef int64_t[::1] idle_since
    cdef int64_t[::1] last_offer
    cdef const uint64_t[:, ::1] skill_bits
    cdef uint64_t[:, ::1] room_bits
    cdef const int32_t[::1] skill_count

    def __init__(self, table):
        self.version = table.version
        self.alive = table.alive
        self.routable = table.routable
        self.present = table.present
        self.kind = table.kind
        self.seq = table.seq
        self.levels = table.levels
        self.units = table.units
        self.counts = table.counts
        self.profile = table.profile
        self.budget = table.budget
        self.cost = table.cost
        self.cmax = table.cmax
        self.intr = table.intr
        self.idle_since = table.idle_since
        self.last_offer = table.last_offer
        self.skill_bits = table.skill_bits
        self.room_bits = table.room_bits
        self.skill_count = table.skill_count

    cdef inline bint fits(self, Py_ssize_t slot, int cls, int64_t extra, bint adding) noexcept nogil:
        cdef int p = self.profile[slot]
        if adding and self.counts[slot, cls] >= self.cmax[p, cls]:
            return False
        cdef int64_t total = _committed(self.units, self.counts, self.intr, slot, p, cls, extra,
                                        adding)
        return 0 <= total <= self.budget[p]

    cdef inline bint fits_new(self, Py_ssize_t slot, int cls) noexcept nogil:
        return self.fits(slot, cls, self.cost[self.profile[slot], cls], True)

    cdef inline bint below_max(self, Py_ssize_t slot, unsigned int also) noexcept nogil:
        """True when the agent holds fewer than its max of every class in ``also``."""
        cdef int p = self.profile[slot]
        cdef int c
        while also:
            c = __builtin_ctz(also)
            also &= also - 1
            if self.counts[slot, c] >= self.cmax[p, c]:
                return False
        return True

    cdef inline int below_max_mask(self, Py_ssize_t slot) noexcept nogil:
        """Bit set of the classes the agent holds fewer than its max of."""
        cdef int p = self.profile[slot]
        cdef int mask = 0
        cdef int c
        for c in range(self.counts.shape[1]):
            if self.counts[slot, c] < self.cmax[p, c]:
                mask |= 1 << c
        return mask

    cdef inline bint skills_ok(self, Py_ssize_t slot, const int32_t* cols, const uint8_t* levels,
                               Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t j
        for j in range(n):
            if self.levels[slot, cols[j]] < levels[j]:
                return False
        return True

    cdef inline double proficiency(self, Py_ssize_t slot, const int32_t* cols,
                                   Py_ssize_t n_req) noexcept nogil:
        """Mean level on the required skills over 5 (0.0 when none is required)."""
        cdef int64_t total = 0
        cdef Py_ssize_t j
        if n_req == 0:
            return 0.0
        for j in range(n_req):
            total += self.levels[slot, cols[j]]
        return total / (5.0 * n_req)

    cdef inline double score(self, Py_ssize_t slot, const int32_t* cols, Py_ssize_t n_req,
                             int cls, Py_ssize_t preferred, int64_t now, int64_t offer_counter,
                             const double* weights) noexcept nogil:
        cdef int p = self.profile[slot]
        cdef int64_t b = self.budget[p]
        cdef int64_t committed = self.cost[p, cls]
        cdef bint holding = False
        cdef Py_ssize_t d
        for d in range(self.units.shape[1]):
            committed += self.units[slot, d]
            if self.counts[slot, d] != 0:
                holding = True
        cdef double proficiency = self.proficiency(slot, cols, n_req)
        cdef double idle_s = 0.0 if holding else (now - self.idle_since[slot]) / 1000.0
        cdef double spare = (b - committed) / <double>b
        cdef double sticky = 1.0 if slot == preferred else 0.0
        cdef double rr_gap = <double>(offer_counter - self.last_offer[slot])
        cdef double s = weights[0] * proficiency
        s = s + weights[1] * idle_s
        s = s + weights[2] * spare
        s = s + weights[3] * sticky
        s = s + weights[4] * rr_gap
        return s


cdef _Table _views(table):
    cdef object cached = getattr(table, "_kernel_views", None)
    if cached is None or (<_Table>cached).version != table.version:
        cached = _Table(table)
        table._kernel_views = cached
    return <_Table>cached


cdef inline const void* _data(object arr, int typenum, Py_ssize_t* n) except NULL:
    """The buffer of a C-contiguous 1-d numpy array of the given type (no memoryview)."""
    if (not cnp.PyArray_Check(arr) or cnp.PyArray_TYPE(<cnp.ndarray>arr) != typenum
            or cnp.PyArray_NDIM(<cnp.ndarray>arr) != 1
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr)):
        raise TypeError(f"expected a contiguous 1-d numpy array of type {typenum}")
    n[0] = cnp.PyArray_DIM(<cnp.ndarray>arr, 0)
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline unsigned int _also(int also, Py_ssize_t n_classes) except? 0:
    """``also`` checked to name only media classes ``0 .. n_classes - 1``."""
    if also < 0 or also >> n_classes:
        raise ValueError(f"also={also} names a media class outside 0..{n_classes - 1}")
    return <unsigned int>also


def committed_units(table, Py_ssize_t slot, int cls, int64_t extra, bint adding):
    """Units the agent would be committed to with ``extra`` more of ``cls`` (see reference)."""
    cdef _Table t = _views(table)
    return _committed(t.units, t.counts, t.intr, slot, t.profile[slot], cls, extra, adding)


def fits(table, Py_ssize_t slot, int cls, int64_t extra, bint adding):
    """True when ``extra`` more units of ``cls`` (a new item if ``adding``) fit the agent."""
    return _views(table).fits(slot, cls, extra, adding)


cdef inline int _room(_Table t, Py_ssize_t slot) noexcept nogil:
    cdef int mask = 0
    cdef int c
    if not t.routable[slot]:
        return 0
    for c in range(t.units.shape[1]):
        if t.fits_new(slot, c):
            mask |= 1 << c
    return mask


def room_mask(table, Py_ssize_t slot):
    """Bit set of the media classes a new item of which the agent could take now."""
    return _room(_views(table), slot)


def refresh_room(table, Py_ssize_t slot):
    """Write the agent's ``room_bits`` (one bit per media class) from its row."""
    _refresh_room(_views(table), slot)


cdef inline void _refresh_room(_Table t, Py_ssize_t slot) noexcept nogil:
    cdef int mask = _room(t, slot)
    cdef Py_ssize_t word = slot >> 6
    cdef uint64_t bit = (<uint64_t>1) << (slot & 63)
    cdef int c
    for c in range(t.room_bits.shape[0]):
        if mask & (1 << c):
            t.room_bits[c, word] |= bit
        else:
            t.room_bits[c, word] &= ~bit


def write_row(table, Py_ssize_t slot, bint routable, bint present, uint8_t kind, int64_t seq,
              int32_t profile, int64_t idle_since, int64_t last_offer, list units, list counts):
    """Write one agent's row (``alive`` set; ``units``/``counts``: one int per media class)
    and then its ``room_bits``."""
    cdef _Table t = _views(table)
    cdef Py_ssize_t c, n = t.units.shape[1]
    if not 0 <= slot < t.alive.shape[0]:
        raise IndexError(f"slot {slot} is outside the table's {t.alive.shape[0]} rows")
    if len(units) != n or len(counts) != n:
        raise ValueError(f"units and counts need {n} items, one per media class")
    t.alive[slot] = 1
    t.routable[slot] = routable
    t.present[slot] = present
    t.kind[slot] = kind
    t.seq[slot] = seq
    t.profile[slot] = profile
    t.idle_since[slot] = idle_since
    t.last_offer[slot] = last_offer
    for c in range(n):
        t.units[slot, c] = units[c]
        t.counts[slot, c] = counts[c]
    _refresh_room(t, slot)


def agent_eligible(table, Py_ssize_t slot, req_cols, req_levels, int cls, int kind_mask,
                   int also=0):
    """Can this agent be offered a new item of ``cls`` needing these skills, right now?

    ``also``: bit set of further classes the item counts against; the agent must hold
    fewer than its max of each.
    """
    cdef _Table t = _views(table)
    cdef unsigned int also_bits = _also(also, t.counts.shape[1])
    cdef Py_ssize_t n_req, n_levels
    cdef const int32_t* cols = <const int32_t*>_data(req_cols, cnp.NPY_INT32, &n_req)
    cdef const uint8_t* levels = <const uint8_t*>_data(req_levels, cnp.NPY_UINT8, &n_levels)
    if not t.routable[slot] or not (t.kind[slot] & kind_mask):
        return False
    if not t.skills_ok(slot, cols, levels, n_req):
        return False
    if also_bits and not t.below_max(slot, also_bits):
        return False
    return t.fits_new(slot, cls)


def score_agent(table, Py_ssize_t slot, req_cols, int cls, Py_ssize_t preferred, int64_t now,
                int64_t offer_counter, weights):
    """The score of one agent for a conversation (see ``best_agent``)."""
    cdef _Table t = _views(table)
    cdef Py_ssize_t n_req, n_weights
    cdef const int32_t* cols = <const int32_t*>_data(req_cols, cnp.NPY_INT32, &n_req)
    cdef const double* w = <const double*>_data(weights, cnp.NPY_FLOAT64, &n_weights)
    return t.score(slot, cols, n_req, cls, preferred, now, offer_counter, w)


def best_agent(table, req_cols, req_levels, int cls, int kind_mask, excluded,
               Py_ssize_t preferred, Py_ssize_t pinned, int64_t now, int64_t offer_counter,
               weights, int also=0):
    """The best eligible agent for one conversation: ``(slot, score)`` or ``(-1, 0.0)``.

    Candidates are the agents with room for ``cls`` holding the rarest required skill,
    read from bitsets, or only ``pinned`` when it is >= 0; with ``also``, only those
    below their max of every class in it. Arrays: ``req_cols`` and ``excluded`` int32,
    ``req_levels`` uint8, ``weights`` float64 (five weights).
    """
    cdef _Table t = _views(table)
    cdef unsigned int also_bits = _also(also, t.counts.shape[1])
    cdef Py_ssize_t n_req, n_levels, n_excluded, n_weights
    cdef const int32_t* cols = <const int32_t*>_data(req_cols, cnp.NPY_INT32, &n_req)
    cdef const uint8_t* levels = <const uint8_t*>_data(req_levels, cnp.NPY_UINT8, &n_levels)
    cdef const int32_t* excl = <const int32_t*>_data(excluded, cnp.NPY_INT32, &n_excluded)
    cdef const double* wts = <const double*>_data(weights, cnp.NPY_FLOAT64, &n_weights)
    cdef Py_ssize_t n_words = t.room_bits.shape[1]
    cdef Py_ssize_t best = -1
    cdef double best_score = 0.0
    cdef int64_t best_seq = 0
    cdef Py_ssize_t w, k, slot, rare = -1
    cdef int32_t rare_count, count
    cdef uint64_t word
    cdef double s
    cdef bint skip
    cdef const int32_t[::1] skill_count = t.skill_count
    with nogil:
        if n_req:
            rare = cols[0]
            rare_count = skill_count[rare]
            for k in range(1, n_req):
                count = skill_count[cols[k]]
                if count < rare_count:
                    rare, rare_count = cols[k], count
        for w in range(n_words):
            if pinned >= 0:
                if w != pinned >> 6:
                    continue
                word = t.room_bits[cls, w] & ((<uint64_t>1) << (pinned & 63))
            else:
                word = t.room_bits[cls, w]
            if rare >= 0:
                word &= t.skill_bits[rare, w]
            while word:
                slot = (w << 6) + __builtin_ctzll(word)
                word &= word - 1
                skip = False
                for k in range(n_excluded):
                    if excl[k] == slot:
                        skip = True
                        break
                if skip or not (t.kind[slot] & kind_mask):
                    continue
                if n_req and not t.skills_ok(slot, cols, levels, n_req):
                    continue
                if also_bits and not t.below_max(slot, also_bits):
                    continue
                s = t.score(slot, cols, n_req, cls, preferred, now, offer_counter, wts)
                if best < 0 or s > best_score or (s == best_score and t.seq[slot] < best_seq):
                    best = slot
                    best_score = s
                    best_seq = t.seq[slot]
    return best, best_score


# --- the queue index ---------------------------------------------------------------------


cdef struct Entry:
    int64_t key
    int64_t deadline
    int64_t seq
    int32_t conv
    int32_t gen


cdef struct Head:
    Entry entry
    double proficiency


cdef inline bint _before(const Entry& a, const Entry& b) noexcept nogil:
    if a.key != b.key:
        return a.key < b.key
    if a.deadline != b.deadline:
        return a.deadline < b.deadline
    return a.seq < b.seq


cdef Entry _preferred(const vector[Head]& heads, const Entry& best,
                      int64_t window) noexcept nogil:
    """Of the heads at most ``window`` after ``best``, the one of the highest proficiency
    (ties: the more urgent)."""
    cdef int64_t limit = INT64_MAX if best.key > INT64_MAX - window else best.key + window
    cdef Py_ssize_t i, pick = -1
    for i in range(heads.size()):
        if heads[i].entry.key > limit:
            continue
        if pick < 0 or heads[i].proficiency > heads[pick].proficiency or (
            heads[i].proficiency == heads[pick].proficiency
            and _before(heads[i].entry, heads[pick].entry)
        ):
            pick = i
    return heads[pick].entry


cdef enum:
    SMALL_SET = 3
    LOOKUP_AUTO = 0
    LOOKUP_SUBSETS = 1
    LOOKUP_SCAN = 2
    HASH_COST = 4  # a hashed look-up costs about as much as testing this many sets present


LOOKUPS = ("auto", "subsets", "scan")
"""How an agent finds its candidate buckets (``QueueIndex.lookup``): ``subsets`` hashes
every subset (up to three) of its skills, ``scan`` tests every skill set present,
``auto`` takes, size by size, whichever of the two costs less (a hashed look-up costs
about ``HASH_COST`` tests)."""


cdef struct SkillSet:
    int32_t cols[3]  # distinct columns, ascending
    int32_t n


cdef inline uint64_t _set_key(const int32_t* cols, Py_ssize_t n) noexcept nogil:
    """A skill set of up to three columns (ascending) as one integer (20 bits a column)."""
    cdef uint64_t key = 0
    cdef Py_ssize_t j
    for j in range(n):
        key |= <uint64_t>(cols[j] + 1) << (20 * j)  # +1: a column is never 0
    return key


cdef inline uint64_t _choose(uint64_t n, int k) noexcept nogil:
    """C(n, k) for k <= 3 (n < 2**20 columns: no overflow)."""
    if k == 0:
        return 1
    if k == 1:
        return n
    if k == 2:
        return n * (n - 1) // 2 if n >= 2 else 0
    return n * (n - 1) * (n - 2) // 6 if n >= 3 else 0


cdef class QueueIndex:
    """Waiting conversations, bucketed by what they need, each bucket a heap by urgency.

    A conversation slot carries its bucket (required skill levels, media class, agent
    kinds, the further classes it counts against), its urgency key (aged priority, then
    SLA deadline, then arrival order: lower is more urgent), its pin (an agent slot and
    deadline) and the agent slots excluded from it. A bucket needing at most three distinct
    skill columns is filed under that skill set, a larger one under its first column and
    class, so an agent only looks at buckets it may qualify for: for each set size it
    either looks up every subset of its skills of that size, or tests each set present of
    that size against its skills, whichever costs less (``lookup``), so the work is
    bounded by the buckets that exist, not by C(skills, 3). Of its candidates, a bucket
    whose heap root comes after the best head found so far is passed over unopened.
    """

    cdef vector[int64_t] pin_until
    cdef vector[int32_t] bucket
    cdef vector[int32_t] pinned
    cdef vector[int32_t] gen
    cdef vector[uint8_t] alive
    cdef vector[vector[int32_t]] excl
    cdef vector[vector[int32_t]] b_cols
    cdef vector[vector[uint8_t]] b_levels
    cdef vector[int32_t] b_cls
    cdef vector[int32_t] b_kmask
    cdef vector[int32_t] b_also
    cdef vector[vector[Entry]] b_heap
    cdef vector[int32_t] b_live
    cdef unordered_map[uint64_t, int32_t] set_at  # skill set key -> index in ``sets``
    cdef vector[SkillSet] sets
    cdef vector[vector[int32_t]] set_buckets  # per skill set, its buckets
    cdef vector[vector[int32_t]] sets_of_size  # [0..3] -> indexes in ``sets``
    cdef vector[vector[int32_t]] large_by_key  # (first column + 1) * classes + class
    cdef vector[int32_t] large  # every bucket of more than three columns
    cdef vector[int32_t] large_first  # ... and its first column
    cdef vector[int32_t] mine  # scratch: the agent's skill columns
    cdef vector[int32_t] cands  # scratch: the agent's candidate buckets
    cdef int n_classes
    cdef int lookup_mode
    cdef dict _ids
    cdef public Py_ssize_t size

    def __init__(self, int n_classes=7):
        self._ids = {}
        self.size = 0
        self.n_classes = n_classes
        self.lookup_mode = LOOKUP_AUTO
        self.sets_of_size.resize(SMALL_SET + 1)

    @property
    def lookup(self):
        """How agents find their candidate buckets: one of ``LOOKUPS`` (``auto``; the
        others are for tests and benchmarks: the candidates, and so every answer, are the
        same)."""
        return LOOKUPS[self.lookup_mode]

    @lookup.setter
    def lookup(self, str value):
        if value not in LOOKUPS:
            raise ValueError(f"lookup={value!r}: expected one of {LOOKUPS}")
        self.lookup_mode = LOOKUPS.index(value)

    def bucket_id(self, cols, levels, int cls, int kind_mask, int also=0):
        """The bucket of this requirement (created on first use): ``cols`` int32 and
        ``levels`` uint8 numpy arrays of one length.

        ``also``: bit set of further classes a conversation of it counts against.
        """
        _also(also, self.n_classes)
        cdef Py_ssize_t n, n_levels
        cdef const int32_t* col = <const int32_t*>_data(cols, cnp.NPY_INT32, &n)
        cdef const uint8_t* level = <const uint8_t*>_data(levels, cnp.NPY_UINT8, &n_levels)
        if n_levels != n:
            raise ValueError(f"{n} columns but {n_levels} levels")
        sig = (PyBytes_FromStringAndSize(<const char*>col, n * sizeof(int32_t)),
               PyBytes_FromStringAndSize(<const char*>level, n), cls, kind_mask, also)
        found = self._ids.get(sig)
        if found is not None:
            return found
        cdef int32_t b = self.b_cls.size()
        cdef vector[int32_t] c
        cdef vector[uint8_t] l
        cdef Py_ssize_t j
        for j in range(n):
            c.push_back(col[j])
            l.push_back(level[j])
        self.b_cols.push_back(c)
        self.b_levels.push_back(l)
        self.b_cls.push_back(cls)
        self.b_kmask.push_back(kind_mask)
        self.b_also.push_back(also)
        self.b_heap.push_back(vector[Entry]())
        self.b_live.push_back(0)
        self._file(b, c, cls)
        self._ids[sig] = b
        return b

    cdef void _file(self, int32_t b, vector[int32_t] c, int cls):
        """File bucket ``b`` under its set of distinct columns ``c`` (or, with more than
        three, under its first column and class)."""
        cdef Py_ssize_t j, k, n = 0
        cdef uint64_t key
        cdef SkillSet found
        sort(c.begin(), c.end())
        for j in range(<Py_ssize_t>c.size()):
            if n == 0 or c[j] != c[n - 1]:
                c[n] = c[j]
                n += 1
        c.resize(n)
        if n > SMALL_SET:
            k = (c[0] + 1) * self.n_classes + cls
            while <Py_ssize_t>self.large_by_key.size() <= k:
                self.large_by_key.push_back(vector[int32_t]())
            self.large_by_key[k].push_back(b)
            self.large.push_back(b)
            self.large_first.push_back(c[0])
            return
        key = _set_key(c.data(), n)
        cdef unordered_map[uint64_t, int32_t].iterator it = self.set_at.find(key)
        if it != self.set_at.end():
            self.set_buckets[deref(it).second].push_back(b)
            return
        found.n = <int32_t>n
        for j in range(n):
            found.cols[j] = c[j]
        self.set_at[key] = <int32_t>self.sets.size()
        self.sets_of_size[n].push_back(<int32_t>self.sets.size())
        self.sets.push_back(found)
        self.set_buckets.push_back(vector[int32_t](1, b))

    cdef inline bint _stale(self, const Entry& e) noexcept nogil:
        return not self.alive[e.conv] or self.gen[e.conv] != e.gen

    cdef void _sift_up(self, vector[Entry]& heap, Py_ssize_t i) noexcept nogil:
        cdef Entry item = heap[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(item, heap[parent]):
                break
            heap[i] = heap[parent]
            i = parent
        heap[i] = item

    cdef void _sift_down(self, vector[Entry]& heap, Py_ssize_t i) noexcept nogil:
        cdef Py_ssize_t n = heap.size()
        cdef Entry item = heap[i]
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and _before(heap[child + 1], heap[child]):
                child += 1
            if not _before(heap[child], item):
                break
            heap[i] = heap[child]
            i = child
        heap[i] = item

    cdef void _pop_root(self, vector[Entry]& heap) noexcept nogil:
        heap[0] = heap.back()
        heap.pop_back()
        if heap.size():
            self._sift_down(heap, 0)

    cdef void _compact(self, int32_t b) noexcept nogil:
        cdef vector[Entry]* heap = &self.b_heap[b]
        cdef vector[Entry] kept
        cdef Py_ssize_t i
        for i in range(heap.size()):
            if not self._stale(heap[0][i]):
                kept.push_back(heap[0][i])
        heap.swap(kept)
        for i in range(<Py_ssize_t>heap.size() // 2 - 1, -1, -1):
            self._sift_down(heap[0], i)

    def add(self, Py_ssize_t conv, int32_t bucket, int64_t key, int64_t deadline, int64_t seq,
            int32_t pinned, int64_t pin_until, excluded):
        """Put a conversation slot in the queue (replacing any earlier entry of it)."""
        if self.alive.size() > <size_t>conv and self.alive[conv]:
            self.remove(conv)
        while <Py_ssize_t>self.alive.size() <= conv:
            self.pin_until.push_back(0)
            self.bucket.push_back(-1)
            self.pinned.push_back(-1)
            self.gen.push_back(0)
            self.alive.push_back(0)
            self.excl.push_back(vector[int32_t]())
        self.gen[conv] += 1
        self.alive[conv] = 1
        self.pinned[conv] = pinned
        self.pin_until[conv] = pin_until
        self.bucket[conv] = bucket
        self.excl[conv].clear()
        cdef Py_ssize_t j
        cdef Py_ssize_t n_excluded
        cdef const int32_t* excl = <const int32_t*>_data(excluded, cnp.NPY_INT32, &n_excluded)
        for j in range(n_excluded):
            self.excl[conv].push_back(excl[j])
        cdef Entry entry
        entry.key = key
        entry.deadline = deadline
        entry.seq = seq
        entry.conv = <int32_t>conv
        entry.gen = self.gen[conv]
        self.b_heap[bucket].push_back(entry)
        self._sift_up(self.b_heap[bucket], self.b_heap[bucket].size() - 1)
        self.b_live[bucket] += 1
        self.size += 1

    def remove(self, Py_ssize_t conv):
        """Take a conversation slot out of the queue."""
        if <size_t>conv >= self.alive.size() or not self.alive[conv]:
            return
        cdef int32_t b = self.bucket[conv]
        self.alive[conv] = 0
        self.b_live[b] -= 1
        self.size -= 1
        if self.b_heap[b].size() > 64 and self.b_heap[b].size() > 4 * <size_t>self.b_live[b]:
            self._compact(b)

    cdef inline bint _acceptable(self, int32_t conv, Py_ssize_t agent, int64_t now,
                                 const uint8_t[::1] present) noexcept nogil:
        cdef int32_t pin = self.pinned[conv]
        cdef Py_ssize_t k
        if pin >= 0 and pin != agent and now < self.pin_until[conv] and present[pin]:
            return False
        for k in range(self.excl[conv].size()):
            if self.excl[conv][k] == agent:
                return False
        return True

    cdef bint _head_for(self, int32_t b, Py_ssize_t agent, int64_t now,
                        const uint8_t[::1] present, Entry* out) noexcept nogil:
        """The most urgent entry of bucket ``b`` this agent may take (False if none)."""
        cdef vector[Entry]* heap = &self.b_heap[b]
        while heap.size() and self._stale(heap[0][0]):
            self._pop_root(heap[0])
        if not heap.size():
            return False
        if self._acceptable(heap[0][0].conv, agent, now, present):
            out[0] = heap[0][0]
            return True
        # best-first walk below the skipped root: only skipped entries open their children
        cdef vector[Py_ssize_t] frontier
        cdef Py_ssize_t i, f, best_i, child, n = heap.size()
        frontier.push_back(1)
        frontier.push_back(2)
        while True:
            best_i = -1
            f = -1
            for i in range(frontier.size()):
                if frontier[i] >= n:
                    continue
                if best_i < 0 or _before(heap[0][frontier[i]], heap[0][best_i]):
                    best_i = frontier[i]
                    f = i
            if best_i < 0:
                return False
            frontier[f] = frontier.back()
            frontier.pop_back()
            if not self._stale(heap[0][best_i]) and self._acceptable(
                heap[0][best_i].conv, agent, now, present
            ):
                out[0] = heap[0][best_i]
                return True
            child = 2 * best_i + 1
            frontier.push_back(child)
            frontier.push_back(child + 1)

    cdef void _consider(self, const vector[int32_t]& buckets, _Table t, Py_ssize_t agent,
                        int room, int below, int kind_bit, int64_t now, Entry* best,
                        bint* have, vector[Head]* heads, int64_t window) noexcept nogil:
        """Fold the candidate buckets' heads into ``best``; collect them in ``heads``
        (with the agent's proficiency on each bucket) unless it is NULL, those within
        ``window`` of the best so far. A bucket whose root (stale or not: no entry of it is
        before it) cannot be the best, nor within the window, is passed over."""
        cdef Py_ssize_t i
        cdef int32_t b
        cdef Entry found
        cdef Head head
        cdef const Entry* root
        for i in range(buckets.size()):
            b = buckets[i]
            if (self.b_live[b] == 0 or not (self.b_kmask[b] & kind_bit)
                    or not (room & (1 << self.b_cls[b])) or self.b_also[b] & ~below):
                continue
            if have[0]:
                root = &self.b_heap[b][0]  # a live entry: the heap is not empty
                if heads == NULL:
                    if not _before(root[0], best[0]):
                        continue
                elif best.key <= INT64_MAX - window and root.key > best.key + window:
                    continue
            if self.b_cols[b].size() and not t.skills_ok(
                agent, &self.b_cols[b][0], &self.b_levels[b][0], self.b_cols[b].size()
            ):
                continue
            if not self._head_for(b, agent, now, t.present, &found):
                continue
            if not have[0] or _before(found, best[0]):
                best[0] = found
                have[0] = True
            if heads != NULL:
                head.entry = found
                head.proficiency = t.proficiency(agent, self.b_cols[b].data(),
                                                 self.b_cols[b].size())
                heads.push_back(head)

    cdef inline void _take_set(self, uint64_t key) noexcept nogil:
        """Add the buckets of the skill set ``key`` (if any is filed under it)."""
        cdef unordered_map[uint64_t, int32_t].iterator it = self.set_at.find(key)
        cdef Py_ssize_t i
        if it == self.set_at.end():
            return
        cdef vector[int32_t]* found = &self.set_buckets[deref(it).second]
        for i in range(found.size()):
            self.cands.push_back(found[0][i])

    cdef void _subsets(self, int size) noexcept nogil:
        """Look up every subset of ``size`` of the agent's skills (``mine``)."""
        cdef Py_ssize_t i, j, k, n = self.mine.size()
        cdef int32_t subset[3]
        if size == 0:
            self._take_set(_set_key(subset, 0))
        for i in range(n if size >= 1 else 0):
            subset[0] = self.mine[i]
            if size == 1:
                self._take_set(_set_key(subset, 1))
                continue
            for j in range(i + 1, n):
                subset[1] = self.mine[j]
                if size == 2:
                    self._take_set(_set_key(subset, 2))
                    continue
                for k in range(j + 1, n):
                    subset[2] = self.mine[k]
                    self._take_set(_set_key(subset, 3))

    cdef void _scan(self, _Table t, Py_ssize_t agent, int size) noexcept nogil:
        """Test every skill set present of ``size`` against the agent's skills."""
        cdef const vector[int32_t]* ids = &self.sets_of_size[size]
        cdef Py_ssize_t n_skills = t.levels.shape[1]
        cdef Py_ssize_t i, j, s
        cdef int32_t col
        cdef bint held
        cdef SkillSet* skill_set
        for i in range(ids.size()):
            s = ids[0][i]
            skill_set = &self.sets[s]
            held = True
            for j in range(skill_set.n):
                col = skill_set.cols[j]
                if col < 0 or col >= n_skills or not t.levels[agent, col]:
                    held = False
                    break
            if held:
                for j in range(self.set_buckets[s].size()):
                    self.cands.push_back(self.set_buckets[s][j])

    cdef void _candidates(self, _Table t, Py_ssize_t agent, int room, int mode) noexcept nogil:
        """Fill ``cands`` with the buckets whose every skill column the agent has (at any
        level; those of more than three columns: whose first column it has, of a class it
        has room for), each once. ``mode``: ``LOOKUP_*``; every mode finds the same."""
        cdef Py_ssize_t n_skills = t.levels.shape[1]
        cdef Py_ssize_t col, i, c, k, n
        cdef int size
        cdef uint64_t present
        cdef bint subsets
        self.cands.clear()
        self.mine.clear()
        for col in range(n_skills):
            if t.levels[agent, col]:
                self.mine.push_back(<int32_t>col)
        n = self.mine.size()
        for size in range(SMALL_SET + 1):
            present = self.sets_of_size[size].size()
            if present == 0:
                continue
            subsets = mode == LOOKUP_SUBSETS or (
                mode == LOOKUP_AUTO and _choose(<uint64_t>n, size) * HASH_COST <= present
            )
            if subsets:
                self._subsets(size)
            else:
                self._scan(t, agent, size)
        if self.large.size() == 0:
            return
        if mode == LOOKUP_SUBSETS or (
            mode == LOOKUP_AUTO and <size_t>(n * self.n_classes) <= self.large.size()
        ):
            for i in range(n):
                for c in range(self.n_classes):
                    k = (self.mine[i] + 1) * self.n_classes + c
                    if room & (1 << c) and k < <Py_ssize_t>self.large_by_key.size():
                        for col in range(self.large_by_key[k].size()):
                            self.cands.push_back(self.large_by_key[k][col])
        else:
            for i in range(self.large.size()):
                col = self.large_first[i]
                if (room & (1 << self.b_cls[self.large[i]]) and 0 <= col < n_skills
                        and t.levels[agent, col]):
                    self.cands.push_back(self.large[i])

    def candidate_buckets(self, table, Py_ssize_t agent, lookup=None):
        """The buckets this agent's lookup looks at, ascending (whatever its room):
        those whose every required skill column it has, at any level. ``lookup``: one of
        ``LOOKUPS`` (default: the index's)."""
        cdef _Table t = _views(table)
        cdef int mode = self.lookup_mode
        if lookup is not None:
            if lookup not in LOOKUPS:
                raise ValueError(f"lookup={lookup!r}: expected one of {LOOKUPS}")
            mode = LOOKUPS.index(lookup)
        self._candidates(t, agent, (1 << self.n_classes) - 1, mode)
        return sorted(self.cands)

    def most_urgent(self, table, Py_ssize_t agent, int64_t now, int64_t prefer_window=0):
        """The most urgent waiting conversation this agent can take now, or -1.

        With ``prefer_window`` > 0 (ms): of the candidate buckets' heads whose key is at
        most ``prefer_window`` after the most urgent one's, the head of the bucket the
        agent is most proficient in (ties: the more urgent). Only buckets whose whole
        requirement the agent holds are ever looked at (``candidate_buckets``).
        """
        cdef _Table t = _views(table)
        if not t.routable[agent]:
            return -1
        cdef int kind_bit = t.kind[agent]
        cdef int c
        cdef Entry best
        cdef bint have = False
        cdef int room = 0
        cdef int below
        cdef vector[Head] found
        cdef vector[Head]* heads = &found if prefer_window > 0 else NULL
        with nogil:
            for c in range(self.n_classes):
                if t.fits_new(agent, c):
                    room |= 1 << c
            if room:
                below = t.below_max_mask(agent)
                self._candidates(t, agent, room, self.lookup_mode)
                self._consider(self.cands, t, agent, room, below, kind_bit, now, &best, &have,
                               heads, prefer_window)
            if have and heads != NULL:
                best = _preferred(found, best, prefer_window)
        return best.conv if have else -1
