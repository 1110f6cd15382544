/* What the firmware needs from a board; each port (boards/<name>/) implements it. This folder (port/)
 * is the interface alone: a port includes it and nothing of app/, proto/ or runtime/ (the memory it
 * needs comes from the application as arguments). boards/README.md: how to write a port, and which
 * of these the shared Cortex-M code (boards/cortex-m/) already provides. */
#ifndef EA_BOARD_H
#define EA_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Clocks, the UART with its receive interrupt, the tick counter. The FPU is already on (startup).
 * rx_ring: memory for the receive ring buffer, owned by the application, which sizes it; the port
 * keeps up to ring_bytes - 1 received bytes in it (one slot tells full from empty). */
void ea_board_init(uint8_t *rx_ring, size_t ring_bytes);

/* The next received byte from the interrupt-fed ring buffer, or -1 when it is empty. */
int ea_board_uart_getc(void);

/* Send bytes; returns when they are all handed to the UART. */
void ea_board_uart_write(const uint8_t *data, size_t len);

/* Bytes lost because the ring buffer was full when they arrived. */
uint32_t ea_board_rx_overruns(void);

/* Sleep until an interrupt if nothing has been received (returns at once otherwise). */
void ea_board_wait_for_rx(void);

/* Free-running 64-bit tick counter and its frequency (QEMU: SysTick; hardware: the DWT cycle counter,
 * whose 32-bit wraps are counted). */
uint64_t ea_board_ticks_now(void);
uint32_t ea_board_tick_hz(void);

/* The stack: bytes reserved for it (the linker's STACK_SIZE) and the deepest use since boot (the
 * startup code paints it; this scans for the highest overwritten word). */
uint32_t ea_board_stack_bytes(void);
uint32_t ea_board_stack_used(void);

/* The board's name as INFO reports it. */
const char *ea_board_name(void);

/* Timestamp GPIO for the inference window (1 = start, 0 = end), called just outside the ticks window.
 * Hardware ports give each call the same active-low pulse (>= 1 us) on Arduino D7, MLPerf Tiny's
 * energy-monitor convention; the default (QEMU) is a weak no-op. */
void ea_board_timestamp_pin(int level);

/* Restart the device (counters back to 0), after the UART has sent what it was given. */
_Noreturn void ea_board_reset(void);

/* Stop with an exit code (QEMU: semihosting SYS_EXIT_EXTENDED; hardware: halt with interrupts off). */
_Noreturn void ea_board_exit(int code);

#endif
