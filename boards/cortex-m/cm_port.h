/* The shared Cortex-M pieces each QEMU port is assembled from; the port file (board.c) supplies the
 * vector table, the UART's address and interrupt numbers and the tick frequency. */
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
void SysTick_Handler(void);

/* CMSDK APB UART (cmsdk_uart.c): receive interrupt into a ring buffer, polled transmit. */
void cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud, uint8_t *ring, size_t ring_bytes);
void cmsdk_uart_isr(void);
void cmsdk_uart_putc_polled(uint8_t c);  /* also usable with interrupts off (fault handler) */
void cmsdk_uart_quiesce(void);           /* stop receive interrupts (fault handler) */

/* SysTick extended to 64 bits (cm_systick.c). */
void cm_systick_start(void);

/* Semihosting (cm_semihost.c). */
void cm_semihost_write0(const char *s);
_Noreturn void cm_semihost_exit(int code);

/* Exit codes the launcher understands (edgeattack.firmware.qemu). */
#define CM_EXIT_HARDFAULT 3
#define CM_EXIT_UNEXPECTED 4

#endif
