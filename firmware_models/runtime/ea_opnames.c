/* Names of the TFLite builtin operators, for error messages (codes without a name print as numbers
 * only). */
#include "ea_opnames.h"

#include "ea_builtins.h"

#define EA_BUILTIN_NAME(name, code) [code] = #name,
static const char *const names[] = {EA_BUILTINS(EA_BUILTIN_NAME)};

const char *ea_builtin_name(int32_t code) {
    if (code < 0 || code >= (int32_t)(sizeof names / sizeof names[0]) || !names[code]) return "";
    return names[code];
}
