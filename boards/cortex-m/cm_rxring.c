/* The UART receive ring shared by every port: the driver's interrupt pushes bytes, the main loop pulls
 * them. The memory is the application's (ea_board_init); one slot stays empty to tell full from empty. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

static uint8_t *g_ring_mem;
static uint32_t g_slots;
static volatile uint32_t g_head; /* written by the interrupt only */
static volatile uint32_t g_tail; /* written by the main loop only */
static volatile uint32_t g_overruns;

void cm_rx_init(uint8_t *ring, size_t ring_bytes)
{
    g_ring_mem = ring;
    g_slots = (uint32_t)ring_bytes;
    g_head = g_tail = 0;
    g_overruns = 0;
}

void cm_rx_push(uint8_t byte)
{
    uint32_t head = g_head;
    uint32_t next = head + 1u == g_slots ? 0u : head + 1u;
    if (next == g_tail) {
        g_overruns++; /* full: the byte is lost, as on a real UART */
    } else {
        g_ring_mem[head] = byte;
        g_head = next;
    }
}

void cm_rx_lost(uint32_t bytes) { g_overruns += bytes; }

int ea_board_uart_getc(void)
{
    uint32_t tail = g_tail;
    if (tail == g_head) {
        return -1;
    }
    uint8_t byte = g_ring_mem[tail];
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
