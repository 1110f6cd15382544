/* The model both applications (main.c, main_mlperf.c) run: its tables prepared on the host when the
 * build says so (EA_PREPARED, firmware_models/Makefile), else parsed and planned here at boot. */
#ifndef EA_APP_MODEL_H
#define EA_APP_MODEL_H

#include "ea_runtime.h"
#include "model_data.h"

static inline ea_status ea_app_model_start(ea_model *m, uint8_t *arena, uint32_t arena_len)
{
#ifdef EA_PREPARED
    return ea_model_restore(m, &ea_model_prepared, ea_model_data, ea_model_data_len, arena, arena_len);
#else
    return ea_model_init(m, ea_model_data, ea_model_data_len, arena, arena_len);
#endif
}

#endif
