/* Which builtin operators a build links (docs/firmware_runtime.md, Footprint).
 *
 * A firmware build for one model defines EA_OPS_SELECTED and generates ea_ops_selected.h, which
 * defines EA_OP_USE_<NAME> as 1 for each builtin the model uses (firmware_models/Makefile, EA_OPS).
 * EA_IF_SELECTED(NAME, ...) then expands to its remaining arguments only for those builtins, so the
 * operator table (ea_ops.c) and the names (ea_opnames.c) keep their single lists and an operator the
 * model does not use is never referenced: --gc-sections drops its code. Without EA_OPS_SELECTED
 * (the host harness, the fuzzers, an all-operators firmware) every builtin is selected. */
#ifndef EA_SELECT_H
#define EA_SELECT_H

#ifdef EA_OPS_SELECTED
#include "ea_ops_selected.h"
/* 1 when EA_OP_USE_<NAME> is defined as 1, else 0 (the preprocessor idiom of Linux's IS_ENABLED). */
#define EA_SEL_ONE_1 0,
#define EA_SEL_SECOND(ignored, val, ...) val
#define EA_SEL_TEST(junk) EA_SEL_SECOND(junk 1, 0, ~)
#define EA_SEL_PASTE(x) EA_SEL_TEST(EA_SEL_ONE_##x)
#define EA_SEL_IS_ONE(x) EA_SEL_PASTE(x)
#define EA_SEL_CAT_(a, b) a##b
#define EA_SEL_CAT(a, b) EA_SEL_CAT_(a, b)
#define EA_SEL_IF_1(...) __VA_ARGS__
#define EA_SEL_IF_0(...)
#define EA_IF_SELECTED(name, ...) EA_SEL_CAT(EA_SEL_IF_, EA_SEL_IS_ONE(EA_OP_USE_##name))(__VA_ARGS__)
#else
#define EA_IF_SELECTED(name, ...) __VA_ARGS__
#endif

#endif /* EA_SELECT_H */
