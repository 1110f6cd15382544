/* Cortex-M system registers used by the ports (ARMv7-M / ARMv8-M architecture reference manuals). */
#ifndef CM_REGS_H
#define CM_REGS_H

#include <stdint.h>

#define CM_REG(addr) (*(volatile uint32_t *)(addr))

#define SCB_ICSR   CM_REG(0xE000ED04u)
#define SCB_VTOR   CM_REG(0xE000ED08u)
#define SCB_AIRCR  CM_REG(0xE000ED0Cu)
#define SCB_CFSR   CM_REG(0xE000ED28u)
#define SCB_HFSR   CM_REG(0xE000ED2Cu)
#define SCB_MMFAR  CM_REG(0xE000ED34u)
#define SCB_BFAR   CM_REG(0xE000ED38u)
#define SCB_CPACR  CM_REG(0xE000ED88u)

#define SCB_ICSR_PENDSTSET (1u << 26)
#define SCB_AIRCR_VECTKEY  (0x5FAu << 16)
#define SCB_AIRCR_SYSRESETREQ (1u << 2)

#define SYST_CSR   CM_REG(0xE000E010u)
#define SYST_RVR   CM_REG(0xE000E014u)
#define SYST_CVR   CM_REG(0xE000E018u)
#define SYST_CSR_ENABLE    (1u << 0)
#define SYST_CSR_TICKINT   (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2)  /* processor clock */

/* Debug Exception and Monitor Control and the DWT cycle counter (ARMv7-M ARM, C1.6.5 DEMCR and
 * C1.8 "The Data Watchpoint and Trace unit": DWT_CTRL bit 0 CYCCNTENA, bit 25 NOCYCCNT). */
#define DEMCR      CM_REG(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL   CM_REG(0xE0001000u)
#define DWT_CYCCNT CM_REG(0xE0001004u)
#define DWT_LAR    CM_REG(0xE0001FB0u) /* CoreSight lock: Cortex-M7 needs it unlocked, M4 ignores it */
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CTRL_NOCYCCNT  (1u << 25)

#define NVIC_ISER(n) CM_REG(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) CM_REG(0xE000E180u + 4u * (n))
#define NVIC_ICPR(n) CM_REG(0xE000E280u + 4u * (n))

static inline void cm_nvic_enable(unsigned irq)
{
    NVIC_ICPR(irq / 32u) = 1u << (irq % 32u);
    NVIC_ISER(irq / 32u) = 1u << (irq % 32u);
}

static inline void cm_nvic_disable(unsigned irq) { NVIC_ICER(irq / 32u) = 1u << (irq % 32u); }

static inline uint32_t cm_irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void cm_irq_restore(uint32_t primask)
{
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static inline void cm_dsb(void) { __asm volatile("dsb 0xF" ::: "memory"); }
static inline void cm_isb(void) { __asm volatile("isb 0xF" ::: "memory"); }

#endif
