/* ST NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F): 120 MHz from HSI16 through the PLL, the ST-LINK virtual
 * COM port on LPUART1 (PG7 TX, PG8 RX, AF8; NUCLEO-144 user manual UM2179, "Virtual COM port"), DWT
 * cycle counter ticks at the core clock, and the MLPerf Tiny timestamp on Arduino D7 = PF13.
 *
 * Register addresses and bits are written here from ST's reference manual RM0432 (STM32L4+ series);
 * each block names its section. No vendor SDK is used. */
#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"

#pragma GCC diagnostic ignored "-Woverride-init"

#define SYSCLK_HZ 120000000u
#define BAUD 115200u
#define NUM_IRQS 96u        /* RM0432 "Interrupt and exception vectors": positions 0..94 */
#define LPUART1_IRQ 70u     /* same table: LPUART1 global interrupt */

/* RCC (RM0432 "Reset and clock control (RCC)", "RCC registers"; base from "Memory map"). */
#define RCC_BASE 0x40021000u
#define RCC_CR       CM_REG(RCC_BASE + 0x00u)
#define RCC_CFGR     CM_REG(RCC_BASE + 0x08u)
#define RCC_PLLCFGR  CM_REG(RCC_BASE + 0x0Cu)
#define RCC_AHB2ENR  CM_REG(RCC_BASE + 0x4Cu)
#define RCC_APB1ENR1 CM_REG(RCC_BASE + 0x58u)
#define RCC_APB1ENR2 CM_REG(RCC_BASE + 0x5Cu)
#define RCC_CCIPR    CM_REG(RCC_BASE + 0x88u)
#define RCC_CR_HSION   (1u << 8)
#define RCC_CR_HSIRDY  (1u << 10)
#define RCC_CR_PLLON   (1u << 24)
#define RCC_CR_PLLRDY  (1u << 25)
#define RCC_CFGR_SW_PLL   3u            /* SW[1:0] */
#define RCC_CFGR_SWS_MASK (3u << 2)     /* SWS[3:2] */
#define RCC_CFGR_HPRE_MASK (0xFu << 4)  /* HPRE[7:4]: 0xxx = /1, 1000 = /2 */
#define RCC_CFGR_HPRE_DIV2 (0x8u << 4)
#define RCC_PLLCFGR_SRC_HSI16 2u        /* PLLSRC[1:0] */
#define RCC_PLLCFGR_M(m) (((m) - 1u) << 4)  /* PLLM[7:4]: divide by PLLM + 1 */
#define RCC_PLLCFGR_N(n) ((n) << 8)     /* PLLN[14:8] */
#define RCC_PLLCFGR_REN  (1u << 24)     /* PLLR[26:25] = 00: divide by 2 */
#define RCC_AHB2ENR_GPIOF (1u << 5)
#define RCC_AHB2ENR_GPIOG (1u << 6)
#define RCC_APB1ENR1_PWR  (1u << 28)
#define RCC_APB1ENR2_LPUART1 (1u << 0)
#define RCC_CCIPR_LPUART1SEL_MASK (3u << 10) /* 00 = PCLK1 */

/* PWR (RM0432 "Power control (PWR)", "PWR registers"). */
#define PWR_BASE 0x40007000u
#define PWR_CR2 CM_REG(PWR_BASE + 0x04u)
#define PWR_SR2 CM_REG(PWR_BASE + 0x14u)
#define PWR_CR5 CM_REG(PWR_BASE + 0x80u)
#define PWR_CR2_IOSV   (1u << 9)   /* VDDIO2 valid: PG[15:2] are powered from VDDIO2 */
#define PWR_SR2_VOSF   (1u << 10)  /* regulator still settling */
#define PWR_CR5_R1MODE (1u << 8)   /* 1 = range 1 normal (80 MHz max), 0 = range 1 boost (120 MHz) */

/* Flash interface (RM0432 "Embedded flash memory (FLASH)": "Read access latency", FLASH_ACR). */
#define FLASH_ACR CM_REG(0x40022000u)
#define FLASH_ACR_LATENCY_5WS 5u  /* 100 < HCLK <= 120 MHz in range 1 boost */
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN   (1u << 9)
#define FLASH_ACR_DCEN   (1u << 10)

/* GPIO (RM0432 "General-purpose I/Os (GPIO)", "GPIO registers"). */
#define GPIOF_BASE 0x48001400u
#define GPIOG_BASE 0x48001800u
#define GPIO_MODER(b)   CM_REG((b) + 0x00u)
#define GPIO_OSPEEDR(b) CM_REG((b) + 0x08u)
#define GPIO_PUPDR(b)   CM_REG((b) + 0x0Cu)
#define GPIO_BSRR(b)    CM_REG((b) + 0x18u)
#define GPIO_AFRL(b)    CM_REG((b) + 0x20u)
#define GPIO_AFRH(b)    CM_REG((b) + 0x24u)
#define MODE_OUTPUT 1u
#define MODE_AF     2u

/* LPUART1 (RM0432 "Low-power universal asynchronous receiver transmitter (LPUART)", "LPUART
 * registers"); FIFO mode stays off (CR1 FIFOEN = 0), so RDR/TDR hold one byte each. */
#define LPUART1_BASE 0x40008000u
#define LPUART_CR1 CM_REG(LPUART1_BASE + 0x00u)
#define LPUART_BRR CM_REG(LPUART1_BASE + 0x0Cu)
#define LPUART_ISR CM_REG(LPUART1_BASE + 0x1Cu)
#define LPUART_ICR CM_REG(LPUART1_BASE + 0x20u)
#define LPUART_RDR CM_REG(LPUART1_BASE + 0x24u)
#define LPUART_TDR CM_REG(LPUART1_BASE + 0x28u)
#define CR1_UE     (1u << 0)
#define CR1_RE     (1u << 2)
#define CR1_TE     (1u << 3)
#define CR1_RXNEIE (1u << 5)  /* interrupt on RXNE and on ORE */
#define ISR_PE   (1u << 0)
#define ISR_FE   (1u << 1)
#define ISR_NE   (1u << 2)
#define ISR_ORE  (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TC   (1u << 6)
#define ISR_TXE  (1u << 7)

#define TS_PIN 13u /* PF13 = Arduino D7 on NUCLEO-144 boards (UM2179, "ST Zio connectors") */

void lpuart1_isr(void);

__attribute__((section(".vectors"), used)) const cm_vector cm_vectors[16 + NUM_IRQS] = {
    [0] = (cm_vector)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = cm_default_handler,        /* NMI */
    [3] = HardFault_Handler,
    [4 ... 14] = cm_default_handler, /* MemManage, BusFault, UsageFault escalate (not enabled) */
    [15] = SysTick_Handler,          /* observes the cycle counter (cm_dwt.c) */
    [16 ... 16 + NUM_IRQS - 1] = cm_default_handler,
    [16 + LPUART1_IRQ] = lpuart1_isr,
};

static void wait_set(volatile uint32_t *reg, uint32_t bits)
{
    while ((*reg & bits) != bits) {
    }
}

/* 120 MHz: RM0432 "Dynamic voltage scaling management" and RCC "Clock source frequency versus
 * voltage scaling": above 80 MHz needs range 1 boost (R1MODE = 0) and 5 flash wait states, and the
 * switch to the PLL goes through AHB/2 for at least 1 us. HSI16 / M 1 * N 15 = VCO 240 MHz, / R 2. */
static void clock_init(void)
{
    RCC_APB1ENR1 |= RCC_APB1ENR1_PWR;
    (void)RCC_APB1ENR1; /* the enable takes effect before PWR is written */
    PWR_CR5 &= ~PWR_CR5_R1MODE;
    while (PWR_SR2 & PWR_SR2_VOSF) {
    }
    FLASH_ACR = FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    while ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != FLASH_ACR_LATENCY_5WS) {
    }
    RCC_CR |= RCC_CR_HSION;
    wait_set(&RCC_CR, RCC_CR_HSIRDY);
    RCC_PLLCFGR = RCC_PLLCFGR_SRC_HSI16 | RCC_PLLCFGR_M(1u) | RCC_PLLCFGR_N(15u) | RCC_PLLCFGR_REN;
    RCC_CR |= RCC_CR_PLLON;
    wait_set(&RCC_CR, RCC_CR_PLLRDY);
    RCC_CFGR = (RCC_CFGR & ~(RCC_CFGR_HPRE_MASK | 3u)) | RCC_CFGR_HPRE_DIV2 | RCC_CFGR_SW_PLL;
    while ((RCC_CFGR & RCC_CFGR_SWS_MASK) != (RCC_CFGR_SW_PLL << 2)) {
    }
    for (volatile uint32_t i = 0; i < 200u; i++) { /* >= 1 us at 60 MHz HCLK */
    }
    RCC_CFGR &= ~RCC_CFGR_HPRE_MASK; /* AHB /1: 120 MHz; APB1 and APB2 stay /1 */
}

static void pin_mode(uint32_t base, uint32_t pin, uint32_t mode)
{
    GPIO_MODER(base) = (GPIO_MODER(base) & ~(3u << (2u * pin))) | (mode << (2u * pin));
}

static void lpuart_init(void)
{
    RCC_AHB2ENR |= RCC_AHB2ENR_GPIOG;
    PWR_CR2 |= PWR_CR2_IOSV; /* without it PG7/PG8 stay unpowered and the VCP is silent */
    /* PG7 = LPUART1_TX, PG8 = LPUART1_RX: alternate function 8 (DS12023 "Alternate functions") */
    GPIO_AFRL(GPIOG_BASE) = (GPIO_AFRL(GPIOG_BASE) & ~(0xFu << 28)) | (8u << 28);
    GPIO_AFRH(GPIOG_BASE) = (GPIO_AFRH(GPIOG_BASE) & ~0xFu) | 8u;
    GPIO_PUPDR(GPIOG_BASE) = (GPIO_PUPDR(GPIOG_BASE) & ~(3u << 16)) | (1u << 16); /* RX pull-up */
    pin_mode(GPIOG_BASE, 7u, MODE_AF);
    pin_mode(GPIOG_BASE, 8u, MODE_AF);

    RCC_APB1ENR2 |= RCC_APB1ENR2_LPUART1;
    RCC_CCIPR &= ~RCC_CCIPR_LPUART1SEL_MASK; /* kernel clock = PCLK1 = 120 MHz */
    (void)RCC_APB1ENR2;
    LPUART_CR1 = 0;
    /* LPUART baud: BRR = 256 * f_ck / baud (RM0432 LPUART "Baud rate generation"), 266,667 here */
    LPUART_BRR = (uint32_t)((256ull * SYSCLK_HZ + BAUD / 2u) / BAUD);
    LPUART_ICR = ISR_PE | ISR_FE | ISR_NE | ISR_ORE;
    LPUART_CR1 = CR1_TE | CR1_RE | CR1_RXNEIE | CR1_UE;
}

void lpuart1_isr(void)
{
    uint32_t isr = LPUART_ISR;
    if (isr & ISR_ORE) {
        LPUART_ICR = ISR_ORE; /* at least one byte was lost before RDR was read */
        cm_rx_lost(1u);
    }
    if (isr & (ISR_PE | ISR_FE | ISR_NE)) {
        LPUART_ICR = ISR_PE | ISR_FE | ISR_NE; /* the byte itself is in RDR: the frame's CRC judges it */
    }
    while (LPUART_ISR & ISR_RXNE) {
        cm_rx_push((uint8_t)LPUART_RDR);
    }
}

static int g_uart_ready;

void cm_console_putc(uint8_t c)
{
    if (!g_uart_ready) {
        return; /* a fault before the UART was set up */
    }
    while (!(LPUART_ISR & ISR_TXE)) {
    }
    LPUART_TDR = c;
}

void cm_console_quiesce(void)
{
    if (g_uart_ready) {
        LPUART_CR1 &= ~CR1_RXNEIE;
    }
}

void cm_console_flush(void)
{
    if (g_uart_ready) {
        while (!(LPUART_ISR & ISR_TC)) {
        }
    }
}

void ea_board_uart_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        cm_console_putc(data[i]);
    }
}

/* MLPerf Tiny's timestamp: the pin idles high and each event is a falling edge held low for at least
 * 1 us (EEMBC energy runner convention); start and end of a window give the same pulse. */
static void timestamp_init(void)
{
    RCC_AHB2ENR |= RCC_AHB2ENR_GPIOF;
    (void)RCC_AHB2ENR;
    GPIO_BSRR(GPIOF_BASE) = 1u << TS_PIN; /* high before it becomes an output: no stray edge */
    GPIO_OSPEEDR(GPIOF_BASE) |= 1u << (2u * TS_PIN);
    pin_mode(GPIOF_BASE, TS_PIN, MODE_OUTPUT);
}

void ea_board_timestamp_pin(int level)
{
    (void)level;
    GPIO_BSRR(GPIOF_BASE) = 1u << (TS_PIN + 16u); /* low */
    cm_delay_cycles(2u * (SYSCLK_HZ / 1000000u)); /* 2 us: twice the minimum */
    GPIO_BSRR(GPIOF_BASE) = 1u << TS_PIN;
}

void ea_board_init(uint8_t *rx_ring, size_t ring_bytes)
{
    clock_init();
    cm_rx_init(rx_ring, ring_bytes);
    lpuart_init();
    g_uart_ready = 1;
    timestamp_init();
    cm_dwt_start();
    cm_nvic_enable(LPUART1_IRQ);
}

uint32_t ea_board_tick_hz(void) { return SYSCLK_HZ; }
