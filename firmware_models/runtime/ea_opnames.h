#ifndef EA_OPNAMES_H
#define EA_OPNAMES_H
#include <stdint.h>
/* TFLite builtin operator name ("" when unknown). */
const char *ea_builtin_name(int32_t code);
#endif
