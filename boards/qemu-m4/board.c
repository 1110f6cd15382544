/* QEMU mps2-an386: Cortex-M4F, 25 MHz system clock, CMSDK UART0 at 0x40004000.
 * UART0 interrupts (QEMU hw/arm/mps2.c, AN385/AN386 layout): RX = IRQ 0, TX = IRQ 1. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

/* The table names every slot once as a range, then overrides the ones in use. */
#pragma GCC diagnostic ignored "-Woverride-init"

#define SYSCLK_HZ 25000000u
#define UART0_BASE 0x40004000u
#define UART0_RX_IRQ 0u
#define NUM_IRQS 32u

__attribute__((section(".vectors"), used)) const cm_vector cm_vectors[16 + NUM_IRQS] = {
    [0] = (cm_vector)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = cm_default_handler,       /* NMI */
    [3] = HardFault_Handler,
    [4 ... 10] = cm_default_handler, /* MemManage, BusFault, UsageFault (escalate: not enabled) */
    [11] = cm_default_handler,      /* SVCall */
    [12 ... 13] = cm_default_handler,
    [14] = cm_default_handler,      /* PendSV */
    [15] = SysTick_Handler,
    [16 ... 16 + NUM_IRQS - 1] = cm_default_handler,
    [16 + UART0_RX_IRQ] = cmsdk_uart_isr,
};

void ea_board_init(uint8_t *rx_ring, size_t ring_bytes)
{
    cmsdk_uart_init(UART0_BASE, SYSCLK_HZ, 115200u, rx_ring, ring_bytes);
    cm_nvic_enable(UART0_RX_IRQ);
    cm_systick_start();
}

uint32_t ea_board_tick_hz(void) { return SYSCLK_HZ; }
