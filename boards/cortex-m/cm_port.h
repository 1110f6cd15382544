/* The shared Cortex-M pieces each port is assembled from. A port folder (boards/<port>/) supplies the
 * vector table, clocks, pins and its UART driver, and picks one source of each pair below in its
 * board.mk (BOARD_COMMON_SRCS):
 *   tick counter:  cm_systick.c (SysTick, QEMU: no cycle counter) | cm_dwt.c (DWT CYCCNT, hardware)
 *   exit / debug:  cm_semihost.c (QEMU semihosting)               | cm_halt.c (hardware: halt)
 *   UART:          cmsdk_uart.c (QEMU's CMSDK UART)                | the port's own driver
 * plus cm_startup.c (reset, faults, stack) and cm_rxring.c (the receive ring) for every port. */
#ifndef CM_PORT_H
#define CM_PORT_H

#include <stddef.h>
#include <stdint.h>

typedef void (*cm_vector)(void);

/* Linker-script symbols. */
extern uint32_t _estack, _sstack; /* the stack: [_sstack, _estack) */

/* Startup (cm_startup.c): Reset_Handler enables the FPU before any C code runs. */
void Reset_Handler(void);
void cm_default_handler(void);
void HardFault_Handler(void);
void SysTick_Handler(void); /* cm_systick.c or cm_dwt.c */

/* The receive ring (cm_rxring.c), filled by the UART driver's interrupt handler; it implements
 * ea_board_uart_getc, ea_board_wait_for_rx and ea_board_rx_overruns. */
void cm_rx_init(uint8_t *ring, size_t ring_bytes);
void cm_rx_push(uint8_t byte);  /* from the receive interrupt; a full ring loses the byte (overrun) */
void cm_rx_lost(uint32_t bytes); /* bytes the UART itself lost (its overrun flag) */

/* The console every UART driver provides for the fault handler and for reset. */
void cm_console_putc(uint8_t c); /* polled: usable with interrupts off */
void cm_console_quiesce(void);   /* stop receive interrupts */
void cm_console_flush(void);     /* wait until the last byte has left the wire (before a reset) */

/* CMSDK APB UART (cmsdk_uart.c, the QEMU machines). */
void cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud, uint8_t *ring, size_t ring_bytes);
void cmsdk_uart_isr(void);

/* Tick counters, 64 bits: SysTick counting its own wraps (cm_systick.c), or the DWT cycle counter
 * observed often enough by SysTick that no wrap is missed (cm_dwt.c). Each defines SysTick_Handler
 * and ea_board_ticks_now. */
void cm_systick_start(void);
void cm_dwt_start(void);
void cm_delay_cycles(uint32_t cycles); /* cm_dwt.c: busy-wait on the cycle counter */

/* The debug channel: semihosting under QEMU (cm_semihost.c), nothing on hardware (cm_halt.c). Each
 * also defines ea_board_exit. */
void cm_debug_write0(const char *s);

/* Exit codes the launcher understands (edgeattack.device.boards.qemu). */
#define CM_EXIT_HARDFAULT 3
#define CM_EXIT_UNEXPECTED 4

#endif
