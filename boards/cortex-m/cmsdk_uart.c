/* Arm CMSDK APB UART (the QEMU machines): receive by interrupt into the ring (cm_rxring.c), transmit
 * polled. Registers: DATA +0x00, STATE +0x04 (bit0 TX full, bit1 RX full), CTRL +0x08 (bit0 TX enable,
 * bit1 RX enable, bit3 RX interrupt enable), INTSTATUS/INTCLEAR +0x0C (bit1 RX), BAUDDIV +0x10. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

#define UART_DATA    0x00u
#define UART_STATE   0x04u
#define UART_CTRL    0x08u
#define UART_INT     0x0Cu
#define UART_BAUDDIV 0x10u

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define CTRL_TX_EN    (1u << 0)
#define CTRL_RX_EN    (1u << 1)
#define CTRL_RX_INTEN (1u << 3)
#define INT_RX        (1u << 1)

static uintptr_t g_base;

static inline volatile uint32_t *reg(uint32_t off) { return (volatile uint32_t *)(g_base + off); }

void cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud, uint8_t *ring, size_t ring_bytes)
{
    g_base = base;
    cm_rx_init(ring, ring_bytes);
    *reg(UART_CTRL) = 0;
    *reg(UART_BAUDDIV) = pclk_hz / baud >= 16u ? pclk_hz / baud : 16u;
    *reg(UART_INT) = 0xFu;
    *reg(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INTEN;
}

void cmsdk_uart_isr(void)
{
    /* Clear first: a byte arriving after the last read below raises the interrupt again. */
    *reg(UART_INT) = INT_RX;
    while (*reg(UART_STATE) & STATE_RX_FULL) {
        cm_rx_push((uint8_t)*reg(UART_DATA));
    }
}

void cm_console_putc(uint8_t c)
{
    if (g_base == 0u) {
        return; /* a fault before the UART was set up: semihosting still reports it */
    }
    while (*reg(UART_STATE) & STATE_TX_FULL) {
    }
    *reg(UART_DATA) = c;
}

void ea_board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        cm_console_putc(data[i]);
    }
}

void cm_console_quiesce(void)
{
    if (g_base != 0u) {
        *reg(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN;
    }
}

void cm_console_flush(void) {} /* QEMU's UART sends each byte as it is written */
