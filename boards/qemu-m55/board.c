/* QEMU mps3-an547: Cortex-M55 (MVE), 32 MHz system clock, CMSDK UART0 at 0x49303000.
 * UART0 interrupts (QEMU hw/arm/mps2-tz.c, AN547 table {33, 34, 43}): QEMU's 2024 fix "mps2-tz: fix
 * RX/TX interrupt order" made 33 the RX line; older QEMU wired RX to 34. Debian 12's QEMU 7.2 raises
 * RX on 33 (checked: with only 34 enabled the firmware never hears INFO). Both lines go to the receive
 * handler so either QEMU works: the TX interrupt is never enabled, so only RX ever fires. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

/* The table names every slot once as a range, then overrides the ones in use. */
#pragma GCC diagnostic ignored "-Woverride-init"

#define SYSCLK_HZ 32000000u
#define UART0_BASE 0x49303000u
#define UART0_IRQ_A 33u
#define UART0_IRQ_B 34u
#define NUM_IRQS 96u

__attribute__((section(".vectors"), used)) const cm_vector cm_vectors[16 + NUM_IRQS] = {
    [0] = (cm_vector)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = cm_default_handler,       /* NMI */
    [3] = HardFault_Handler,
    [4 ... 14] = cm_default_handler,
    [15] = SysTick_Handler,
    [16 ... 16 + NUM_IRQS - 1] = cm_default_handler,
    [16 + UART0_IRQ_A] = cmsdk_uart_isr,
    [16 + UART0_IRQ_B] = cmsdk_uart_isr,
};

void ea_board_init(uint8_t *rx_ring, size_t ring_bytes)
{
    cmsdk_uart_init(UART0_BASE, SYSCLK_HZ, 115200u, rx_ring, ring_bytes);
    cm_nvic_enable(UART0_IRQ_A);
    cm_nvic_enable(UART0_IRQ_B);
    cm_systick_start();
}

uint32_t ea_board_tick_hz(void) { return SYSCLK_HZ; }
