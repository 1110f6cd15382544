/* Ahead-of-time arena planner, in the spirit of TFLM's GreedyMemoryPlanner: tensors are placed largest
 * first, each at the lowest 16-byte aligned offset that does not overlap a tensor already placed whose
 * lifetime [first_op, last_op] intersects its own; then each kernel's scratch buffer (its lifetime is
 * its one operator) in the memory its operator leaves free. Loops are bounded by EA_MAX_TENSORS. */
#include "ea_plan.h"

static uint32_t align16(uint32_t v) { return (v + 15u) & ~15u; }

static int lifetimes_overlap(const ea_tensor *a, const ea_tensor *b) {
    return a->first_op <= b->last_op && b->first_op <= a->last_op;
}

uint32_t ea_plan_arena(ea_model *m) {
    int16_t order[EA_MAX_TENSORS];
    uint8_t placed[EA_MAX_TENSORS] = {0};
    uint32_t n = 0, total = 0;

    for (uint32_t k = 0; k < m->n_tensors; k++) {
        const ea_tensor *t = &m->tensors[k];
        if (t->is_const || !t->producer_set) continue;
        /* insertion sort: size descending, then index ascending (deterministic) */
        uint32_t j = n++;
        while (j > 0 && align16(m->tensors[order[j - 1]].bytes) < align16(t->bytes)) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (int16_t)k;
    }
    for (uint32_t a = 0; a < n; a++) {
        ea_tensor *t = &m->tensors[order[a]];
        const uint32_t size = align16(t->bytes);
        /* Candidate offsets: 0 and the end of every conflicting placed tensor; take the lowest that fits. */
        uint32_t best = UINT32_MAX;
        for (uint32_t c = 0; c <= a; c++) {
            uint32_t cand;
            if (c == a) {
                cand = 0;
            } else {
                const ea_tensor *o = &m->tensors[order[c]];
                if (!lifetimes_overlap(t, o)) continue;
                cand = o->offset + align16(o->bytes);
            }
            if (cand >= best) continue;
            int fits = 1;
            for (uint32_t b = 0; b < a && fits; b++) {
                const ea_tensor *o = &m->tensors[order[b]];
                if (!placed[b] || !lifetimes_overlap(t, o)) continue;
                const uint32_t os = o->offset, oe = os + align16(o->bytes);
                if (cand < oe && os < cand + size) fits = 0;
            }
            if (fits) best = cand;
        }
        if ((uint64_t)best + size > 0x7fffffffu) return UINT32_MAX; /* the loader reports it */
        t->offset = best;
        placed[a] = 1;
        if (best + size > total) total = best + size;
    }
    return total;
}

static int alive_at(const ea_tensor *t, int32_t op) {
    return !t->is_const && t->producer_set && t->first_op <= op && op <= t->last_op;
}

uint32_t ea_plan_scratch(const ea_model *m, uint32_t op, uint32_t bytes, uint32_t *total) {
    const uint32_t size = align16(bytes);
    uint32_t best = UINT32_MAX;
    /* Candidates: 0 and the end of every tensor alive during the operator; take the lowest that fits. */
    for (uint32_t c = 0; c <= m->n_tensors; c++) {
        uint32_t cand = 0;
        if (c < m->n_tensors) {
            const ea_tensor *o = &m->tensors[c];
            if (!alive_at(o, (int32_t)op)) continue;
            cand = o->offset + align16(o->bytes);
        }
        if (cand >= best) continue;
        int fits = 1;
        for (uint32_t b = 0; b < m->n_tensors && fits; b++) {
            const ea_tensor *o = &m->tensors[b];
            if (!alive_at(o, (int32_t)op)) continue;
            const uint32_t os = o->offset, oe = os + align16(o->bytes);
            if (cand < oe && os < (uint64_t)cand + size) fits = 0;
        }
        if (fits) best = cand;
    }
    if ((uint64_t)best + size > 0x7fffffffu) {
        *total = UINT32_MAX; /* the loader reports it */
        return 0;
    }
    if (best + size > *total) *total = best + size;
    return best;
}
