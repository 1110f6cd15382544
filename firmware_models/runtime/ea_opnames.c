/* Names of the TFLite builtin operators, for error messages (codes without a name print as numbers
 * only). A firmware built for one model keeps the names of the builtins the model uses, supported or
 * not (ea_select.h), so "unsupported operator X" still names X. Packed: the codes, then the names one
 * after the other, each ending in '\0' (no table of pointers). */
#include "ea_opnames.h"

#include "ea_builtins.h"
#include "ea_select.h"

#define EA_NAME_CODE(name, code) EA_IF_SELECTED(name, code,)
#define EA_NAME_TEXT(name, code) EA_IF_SELECTED(name, #name "\0")
static const uint8_t codes[] = {EA_BUILTINS(EA_NAME_CODE) 255}; /* 255: end (no builtin has it) */
static const char names[] = EA_BUILTINS(EA_NAME_TEXT) "";

const char *ea_builtin_name(int32_t code) {
    const char *name = names;
    for (const uint8_t *c = codes; *c != 255; c++) {
        if (*c == code) return name;
        while (*name) name++;
        name++;
    }
    return "";
}
