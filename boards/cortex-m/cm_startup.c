/* Reset, fault reporting and the board-independent parts of ea_board.h for Cortex-M. */
#include <string.h>

#include "cm_port.h"
#include "cm_regs.h"
#include "ea_board.h"
#include "ea_strbuf.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
extern const cm_vector cm_vectors[];
int main(void);

static _Noreturn void cm_c_start(void);

/* Naked and in assembly: with -mfloat-abi=hard the compiler may use FP registers in any C function,
 * and an FP instruction before CPACR grants CP10/CP11 access faults (NOCP). */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        "ldr r0, =0xE000ED88\n"   /* CPACR */
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n" /* CP10, CP11: full access */
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b cm_c_start\n");
}

/* Stack high-water mark: every word of the stack below this function's own frame gets a pattern at
 * boot; the deepest use is then where the lowest overwritten word is (ea_board_stack_used). */
#define CM_STACK_PAINT 0xC5AC5AC5u

__attribute__((noinline)) static void stack_paint(void)
{
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    /* 64 bytes below SP: this frame and anything the compiler puts under it stay untouched. */
    for (volatile uint32_t *w = &_sstack; (uintptr_t)w + 64u < sp; w++) {
        *w = CM_STACK_PAINT;
    }
}

uint32_t ea_board_stack_bytes(void)
{
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)&_sstack);
}

uint32_t ea_board_stack_used(void)
{
    const uint32_t *w = &_sstack;
    while (w < &_estack && *w == CM_STACK_PAINT) {
        w++;
    }
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)w);
}

static _Noreturn void __attribute__((used)) cm_c_start(void)
{
    SCB_VTOR = (uint32_t)(uintptr_t)cm_vectors;
    size_t data_len = (size_t)((uintptr_t)&_edata - (uintptr_t)&_sdata);
    if (&_sidata != &_sdata) {
        memcpy(&_sdata, &_sidata, data_len);
    }
    memset(&_sbss, 0, (size_t)((uintptr_t)&_ebss - (uintptr_t)&_sbss));
    stack_paint();
    cm_dsb();
    cm_isb();
    int rc = main();
    ea_board_exit(rc == 0 ? 1 : rc); /* the firmware's main loop never returns */
}

/* ------------------------------------------------------------------------------------------- */
/* faults */

static void fault_print(const char *line)
{
    cm_console_quiesce();
    /* A 0x00 first ends any half-sent frame so the host's decoder stays in step. */
    cm_console_putc(0u);
    for (const char *s = line; *s != '\0'; s++) {
        cm_console_putc((uint8_t)*s);
    }
    cm_console_putc(0u);
    cm_console_flush();
    cm_debug_write0(line); /* QEMU writes it to its stderr, where the launcher reads it */
}

/* Called from HardFault_Handler with the exception stack frame (r0-r3, r12, lr, pc, xpsr). */
__attribute__((used)) _Noreturn void cm_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    char buf[200];
    ea_strbuf t;
    ea_sb_init(&t, buf, sizeof buf);
    ea_sb_raw(&t, "\r\nHardFault CFSR=");
    ea_sb_hex32(&t, SCB_CFSR);
    ea_sb_raw(&t, " HFSR=");
    ea_sb_hex32(&t, SCB_HFSR);
    ea_sb_raw(&t, " PC=");
    ea_sb_hex32(&t, frame[6]);
    ea_sb_raw(&t, " LR=");
    ea_sb_hex32(&t, frame[5]);
    ea_sb_raw(&t, " MMFAR=");
    ea_sb_hex32(&t, SCB_MMFAR);
    ea_sb_raw(&t, " BFAR=");
    ea_sb_hex32(&t, SCB_BFAR);
    ea_sb_raw(&t, " EXC_RETURN=");
    ea_sb_hex32(&t, exc_return);
    ea_sb_raw(&t, "\r\n");
    fault_print(buf);
    ea_board_exit(CM_EXIT_HARDFAULT);
}

/* Pick the stack the faulting code used (EXC_RETURN bit 2) and hand its frame to C. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm volatile(
        "tst lr, #4\n"
        "ite eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "mov r1, lr\n"
        "b cm_fault_report\n");
}

void cm_default_handler(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    char buf[96];
    ea_strbuf t;
    ea_sb_init(&t, buf, sizeof buf);
    ea_sb_raw(&t, "\r\nUnexpected exception ");
    ea_sb_u64(&t, ipsr & 0x1FFu);
    ea_sb_raw(&t, " CFSR=");
    ea_sb_hex32(&t, SCB_CFSR);
    ea_sb_raw(&t, "\r\n");
    fault_print(buf);
    ea_board_exit(CM_EXIT_UNEXPECTED);
}

/* ------------------------------------------------------------------------------------------- */
/* board-independent parts of ea_board.h */

__attribute__((weak)) void ea_board_timestamp_pin(int level) { (void)level; }

_Noreturn void ea_board_reset(void)
{
    cm_console_flush(); /* the reply that asked for the reset leaves the UART first */
    cm_dsb();
    SCB_AIRCR = SCB_AIRCR_VECTKEY | SCB_AIRCR_SYSRESETREQ;
    cm_dsb();
    for (;;) {
    }
}

/* ea_board_exit: cm_semihost.c (QEMU) or cm_halt.c (hardware). */
