/* Arm CMSDK APB UART: receive by interrupt into a ring buffer, transmit polled.
 * Registers: DATA +0x00, STATE +0x04 (bit0 TX full, bit1 RX full), CTRL +0x08 (bit0 TX enable,
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
/* The receive ring: the application's memory (ea_board_init); one slot stays empty to tell full from
 * empty. */
static uint8_t *g_uart_ring;
static uint32_t g_slots;
static volatile uint32_t g_head; /* written by the interrupt only */
static volatile uint32_t g_tail; /* written by the main loop only */
static volatile uint32_t g_overruns;

static inline volatile uint32_t *reg(uint32_t off) { return (volatile uint32_t *)(g_base + off); }

void cmsdk_uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud, uint8_t *ring, size_t ring_bytes)
{
    g_base = base;
    g_uart_ring = ring;
    g_slots = (uint32_t)ring_bytes;
    g_head = g_tail = 0;
    g_overruns = 0;
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
        uint8_t byte = (uint8_t)*reg(UART_DATA);
        uint32_t head = g_head;
        uint32_t next = head + 1u == g_slots ? 0u : head + 1u;
        if (next == g_tail) {
            g_overruns++; /* full: the byte is lost, as on a real UART */
        } else {
            g_uart_ring[head] = byte;
            g_head = next;
        }
    }
}

int ea_board_uart_getc(void)
{
    uint32_t tail = g_tail;
    if (tail == g_head) {
        return -1;
    }
    uint8_t byte = g_uart_ring[tail];
    g_tail = tail + 1u == g_slots ? 0u : tail + 1u;
    return byte;
}

void ea_board_wait_for_rx(void)
{
    /* WFI with interrupts masked still wakes on a pending interrupt, so a byte arriving between
     * the check and the WFI is not slept through. */
    uint32_t key = cm_irq_save();
    if (g_tail == g_head) {
        __asm volatile("wfi");
    }
    cm_irq_restore(key);
}

uint32_t ea_board_rx_overruns(void) { return g_overruns; }

void cmsdk_uart_putc_polled(uint8_t c)
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
        cmsdk_uart_putc_polled(data[i]);
    }
}

void cmsdk_uart_quiesce(void)
{
    if (g_base != 0u) {
        *reg(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN;
    }
}
