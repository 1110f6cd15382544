/* The DWT cycle counter as the 64-bit tick counter of the hardware ports. CYCCNT is 32 bits and wraps
 * silently (every 35.8 s at 120 MHz, 67.1 s at 64 MHz) with no interrupt, so the 64-bit count is
 * advanced by the unsigned difference since the last observation; SysTick observes it every 2^24
 * cycles (0.14 s at 120 MHz), far more often than it wraps, so no wrap is missed even when nothing
 * reads the counter for minutes. QEMU does not implement CYCCNT (it reads 0): QEMU ports use
 * cm_systick.c instead. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

#define RELOAD 0x00FFFFFFu /* SysTick's full 24 bits */

static volatile uint64_t g_total;
static volatile uint32_t g_last;

/* Interrupts masked by the caller: the read-modify-write of g_total is not atomic. */
static uint64_t observe(void)
{
    uint32_t now = DWT_CYCCNT;
    uint64_t total = g_total + (uint32_t)(now - g_last);
    g_last = now;
    g_total = total;
    return total;
}

void cm_dwt_start(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    g_last = 0;
    g_total = 0;
    SYST_CSR = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;
}

void SysTick_Handler(void)
{
    uint32_t key = cm_irq_save();
    (void)observe();
    cm_irq_restore(key);
}

uint64_t ea_board_ticks_now(void)
{
    uint32_t key = cm_irq_save();
    uint64_t t = observe();
    cm_irq_restore(key);
    return t;
}

void cm_delay_cycles(uint32_t cycles)
{
    uint32_t start = DWT_CYCCNT;
    while ((uint32_t)(DWT_CYCCNT - start) < cycles) {
    }
}
