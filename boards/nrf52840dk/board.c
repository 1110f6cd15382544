/* Nordic nRF52840 DK (nRF52840, Cortex-M4F, 64 MHz): the J-Link OB virtual COM port on UARTE0 (P0.06
 * TXD, P0.08 RXD, no flow control; nRF52840 DK user guide, "Virtual COM port"), the 32 MHz crystal
 * started for an accurate baud rate, DWT cycle counter ticks at the core clock, and the MLPerf Tiny
 * timestamp on Arduino D7 = P1.08 (DK user guide, "Arduino Uno compatible connectors").
 *
 * Register addresses and bits are written here from Nordic's nRF52840 Product Specification (PS); each
 * block names its chapter. No vendor SDK is used, and none of the SDK's errata workarounds (none
 * concerns the CLOCK, NVMC cache, GPIO or UARTE use below) but the MDK's access port handling
 * (nrf_approtect.h), without which newer silicon locks the debug port at every reset. */
#include <string.h>

#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"
#include "nrf_approtect.h"

#pragma GCC diagnostic ignored "-Woverride-init"

#define CPU_HZ 64000000u
#define NUM_IRQS 48u     /* PS "Instantiation": peripheral IDs 0..47 are the interrupt numbers */
#define UARTE0_IRQ 2u    /* ID 2: UARTE0 / UART0 */

/* CLOCK (PS "CLOCK — Clock control", registers). */
#define CLOCK_BASE 0x40000000u
#define CLOCK_TASKS_HFCLKSTART    CM_REG(CLOCK_BASE + 0x000u)
#define CLOCK_EVENTS_HFCLKSTARTED CM_REG(CLOCK_BASE + 0x100u)

/* NVMC (PS "NVMC — Non-volatile memory controller"): ICACHECNF bit 0 CACHEEN, the flash cache;
 * CONFIG bits 1:0 WEN (0 read only, 1 write enabled); READY bit 0 (1: ready). */
#define NVMC_ICACHECNF CM_REG(0x4001E540u)
#define NVMC_CONFIG CM_REG(0x4001E504u)
#define NVMC_READY CM_REG(0x4001E400u)

/* GPIO (PS "GPIO — General purpose input/output"): P0 at 0x50000000, P1 at 0x50000300. */
#define P0_BASE 0x50000000u
#define P1_BASE 0x50000300u
#define GPIO_OUTSET(b)     CM_REG((b) + 0x508u)
#define GPIO_OUTCLR(b)     CM_REG((b) + 0x50Cu)
#define GPIO_PIN_CNF(b, n) CM_REG((b) + 0x700u + 4u * (n))
#define PIN_OUTPUT   ((1u << 0) | (1u << 1)) /* DIR output, input buffer disconnected */
#define PIN_INPUT_PU (3u << 2)               /* DIR input, input buffer connected, pull-up */

/* UARTE0 (PS "UARTE — Universal asynchronous receiver/transmitter with EasyDMA", registers). */
#define UARTE0_BASE 0x40002000u
#define U(off) CM_REG(UARTE0_BASE + (off))
#define UARTE_TASKS_STARTRX    U(0x000u)
#define UARTE_TASKS_STARTTX    U(0x008u)
#define UARTE_EVENTS_ENDRX     U(0x110u)
#define UARTE_EVENTS_ENDTX     U(0x120u)
#define UARTE_EVENTS_ERROR     U(0x124u)
#define UARTE_EVENTS_RXSTARTED U(0x14Cu)
#define UARTE_SHORTS           U(0x200u)
#define UARTE_INTENSET         U(0x304u)
#define UARTE_INTENCLR         U(0x308u)
#define UARTE_ERRORSRC         U(0x480u)
#define UARTE_ENABLE           U(0x500u)
#define UARTE_PSEL_RTS         U(0x508u)
#define UARTE_PSEL_TXD         U(0x50Cu)
#define UARTE_PSEL_CTS         U(0x510u)
#define UARTE_PSEL_RXD         U(0x514u)
#define UARTE_BAUDRATE         U(0x524u)
#define UARTE_RXD_PTR          U(0x534u)
#define UARTE_RXD_MAXCNT       U(0x538u)
#define UARTE_TXD_PTR          U(0x544u)
#define UARTE_TXD_MAXCNT       U(0x548u)
#define UARTE_CONFIG           U(0x56Cu)
#define SHORTS_ENDRX_STARTRX (1u << 5)
#define INT_ENDRX     (1u << 4)
#define INT_ERROR     (1u << 9)
#define INT_RXSTARTED (1u << 19)
#define ERRORSRC_OVERRUN (1u << 0)
#define UARTE_ENABLE_ON 8u
#define BAUD_115200 0x01D7E000u
#define PSEL_DISCONNECTED 0xFFFFFFFFu

#define TXD_PIN 6u  /* P0.06 */
#define RXD_PIN 8u  /* P0.08 */
#define TS_PIN 8u   /* P1.08 = Arduino D7 */

void uarte0_isr(void);

__attribute__((section(".vectors"), used)) const cm_vector cm_vectors[16 + NUM_IRQS] = {
    [0] = (cm_vector)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = cm_default_handler,        /* NMI */
    [3] = HardFault_Handler,
    [4 ... 14] = cm_default_handler, /* MemManage, BusFault, UsageFault escalate (not enabled) */
    [15] = SysTick_Handler,          /* observes the cycle counter (cm_dwt.c) */
    [16 ... 16 + NUM_IRQS - 1] = cm_default_handler,
    [16 + UARTE0_IRQ] = uarte0_isr,
};

/* EasyDMA receives one byte at a time into two one-byte buffers: ENDRX restarts reception at once
 * (shortcut ENDRX_STARTRX) into the buffer RXD.PTR names, and each RXSTARTED (the pointer was taken)
 * points RXD.PTR at the other buffer for the next start. The interrupt must run within one byte time
 * (87 us at 115200 baud) of ENDRX, or the restarted reception reuses a buffer not yet read. */
static uint8_t g_rx_dma[2];
static uint32_t g_rx_done; /* the buffer the next ENDRX completes */
static uint32_t g_rx_next; /* the buffer the next RXSTARTED's successor gets */
static uint8_t g_tx_dma[64]; /* EasyDMA cannot read flash: transmitted bytes are copied here first */
static int g_uart_ready;

static void uarte_init(void)
{
    GPIO_OUTSET(P0_BASE) = 1u << TXD_PIN; /* idle high before the UARTE takes the pin */
    GPIO_PIN_CNF(P0_BASE, TXD_PIN) = PIN_OUTPUT;
    GPIO_PIN_CNF(P0_BASE, RXD_PIN) = PIN_INPUT_PU;
    UARTE_PSEL_TXD = TXD_PIN; /* bits 4:0 pin, bit 5 port (0), bit 31 = 0: connected */
    UARTE_PSEL_RXD = RXD_PIN;
    UARTE_PSEL_RTS = PSEL_DISCONNECTED;
    UARTE_PSEL_CTS = PSEL_DISCONNECTED;
    UARTE_BAUDRATE = BAUD_115200;
    UARTE_CONFIG = 0; /* 8N1, no hardware flow control */
    UARTE_ENABLE = UARTE_ENABLE_ON;

    g_rx_done = 0;
    g_rx_next = 1;
    UARTE_EVENTS_ENDRX = 0;
    UARTE_EVENTS_RXSTARTED = 0;
    UARTE_EVENTS_ERROR = 0;
    UARTE_RXD_PTR = (uint32_t)(uintptr_t)&g_rx_dma[0];
    UARTE_RXD_MAXCNT = 1;
    UARTE_SHORTS = SHORTS_ENDRX_STARTRX;
    UARTE_INTENSET = INT_ENDRX | INT_RXSTARTED | INT_ERROR;
    UARTE_TASKS_STARTRX = 1;
}

void uarte0_isr(void)
{
    if (UARTE_EVENTS_ERROR) {
        UARTE_EVENTS_ERROR = 0;
        uint32_t src = UARTE_ERRORSRC;
        UARTE_ERRORSRC = src; /* write 1 to clear */
        if (src & ERRORSRC_OVERRUN) {
            cm_rx_lost(1u);
        }
    }
    if (UARTE_EVENTS_ENDRX) {
        UARTE_EVENTS_ENDRX = 0;
        cm_rx_push(g_rx_dma[g_rx_done]);
        g_rx_done ^= 1u;
    }
    if (UARTE_EVENTS_RXSTARTED) {
        UARTE_EVENTS_RXSTARTED = 0;
        UARTE_RXD_PTR = (uint32_t)(uintptr_t)&g_rx_dma[g_rx_next];
        g_rx_next ^= 1u;
    }
}

static void tx_dma(const uint8_t *data, size_t len)
{
    memcpy(g_tx_dma, data, len);
    UARTE_EVENTS_ENDTX = 0;
    UARTE_TXD_PTR = (uint32_t)(uintptr_t)g_tx_dma;
    UARTE_TXD_MAXCNT = (uint32_t)len;
    UARTE_TASKS_STARTTX = 1;
    while (!UARTE_EVENTS_ENDTX) {
    }
    UARTE_EVENTS_ENDTX = 0;
}

void ea_board_uart_write(const uint8_t *data, size_t len)
{
    while (len > 0u) {
        size_t n = len < sizeof g_tx_dma ? len : sizeof g_tx_dma;
        tx_dma(data, n);
        data += n;
        len -= n;
    }
}

void cm_console_putc(uint8_t c)
{
    if (g_uart_ready) {
        tx_dma(&c, 1u);
    }
}

void cm_console_quiesce(void)
{
    if (g_uart_ready) {
        UARTE_INTENCLR = INT_ENDRX | INT_RXSTARTED | INT_ERROR;
    }
}

void cm_console_flush(void)
{
    /* ENDTX means EasyDMA has read the last byte, not that it has left the pin: wait two byte times. */
    if (g_uart_ready) {
        cm_delay_cycles(CPU_HZ / 115200u * 10u * 2u);
    }
}

/* MLPerf Tiny's timestamp: the pin idles high and each event is a falling edge held low for at least
 * 1 us (EEMBC energy runner convention); start and end of a window give the same pulse. */
static void timestamp_init(void)
{
    GPIO_OUTSET(P1_BASE) = 1u << TS_PIN;
    GPIO_PIN_CNF(P1_BASE, TS_PIN) = PIN_OUTPUT;
}

void ea_board_timestamp_pin(int level)
{
    (void)level;
    GPIO_OUTCLR(P1_BASE) = 1u << TS_PIN;
    cm_delay_cycles(2u * (CPU_HZ / 1000000u)); /* 2 us: twice the minimum */
    GPIO_OUTSET(P1_BASE) = 1u << TS_PIN;
}

/* Keeps the debug port open across resets on silicon with the hardened AP-Protect (nrf_approtect.h). */
static void approtect_keep_open(void)
{
    const unsigned plan = nrf_approtect_plan(CM_REG(NRF_FICR_CONF0), CM_REG(NRF_FICR_CONF1),
                                             CM_REG(NRF_UICR_APPROTECT));
    if (plan & NRF_AP_PROGRAM_UICR) {
        NVMC_CONFIG = 1u; /* write enabled */
        while (!(NVMC_READY & 1u)) {
        }
        CM_REG(NRF_UICR_APPROTECT) = NRF_APPROTECT_HW_DISABLED;
        while (!(NVMC_READY & 1u)) {
        }
        NVMC_CONFIG = 0u;
    }
    if (plan & NRF_AP_OPEN) {
        CM_REG(NRF_APPROTECT_DISABLE) = NRF_APPROTECT_SW_DISABLE;
    }
}

void ea_board_init(uint8_t *rx_ring, size_t ring_bytes)
{
    approtect_keep_open();
    /* The CPU already runs at 64 MHz; the crystal replaces the internal oscillator (HFINT) as the
     * high-frequency source, whose tolerance is too loose for a dependable UART. */
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    while (!CLOCK_EVENTS_HFCLKSTARTED) {
    }
    NVMC_ICACHECNF = 1u;
    cm_dwt_start();
    cm_rx_init(rx_ring, ring_bytes);
    uarte_init();
    g_uart_ready = 1;
    timestamp_init();
    cm_nvic_enable(UARTE0_IRQ);
}

uint32_t ea_board_tick_hz(void) { return CPU_HZ; }
