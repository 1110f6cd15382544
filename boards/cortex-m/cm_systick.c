/* SysTick as a free-running tick counter, extended to 64 bits by counting wraps in its interrupt. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

#define RELOAD 0x00FFFFFFu /* the full 24 bits: one wrap every 2^24 ticks */

static volatile uint64_t g_wraps;

void cm_systick_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
}

void SysTick_Handler(void) { g_wraps++; }

uint64_t ea_board_ticks_now(void)
{
    uint32_t key = cm_irq_save();
    uint64_t wraps = g_wraps;
    uint32_t value = SYST_CVR;
    /* A wrap whose interrupt is still pending (we masked it) has not been counted yet: the value
     * re-read now is certainly after that wrap. */
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        value = SYST_CVR;
        wraps++;
    }
    cm_irq_restore(key);
    return wraps * ((uint64_t)RELOAD + 1u) + (RELOAD - value);
}
