/* The host harness's `prepare` output (ea_prepared_c.c). */
#ifndef EA_PREPARED_C_H
#define EA_PREPARED_C_H

#include <stdio.h>

#include "ea_runtime.h"

/* The tables of `m` (initialized by ea_model_init) as a firmware keeps them: copied into `tensors` and
 * `ops` (room for m's counts), every arena offset moved down by the tables' size; `p` describes them
 * (its in_info/out_info point into m). */
void ea_prepare_tables(const ea_model *m, ea_tensor *tensors, ea_op *ops, ea_prepared *p);

/* Writes `p` as C defining `const ea_prepared ea_model_prepared`. selected: renumber operator rows for a
 * firmware linking only the model's operators (EA_OPS). Returns 0, or -1 on a write error. */
int ea_write_prepared_c(FILE *f, const ea_model *m, const ea_prepared *p, int selected);

/* Restores `p` into a second model on `arena` (p->arena_needed bytes or more) and checks that it computes
 * the same outputs as `m` on a few deterministic inputs. Returns 0, or -1 with the reason in `why`. */
int ea_check_prepared(ea_model *m, const ea_prepared *p, uint8_t *arena, uint32_t arena_len, char *why, size_t why_len);

#endif
