/* Arm semihosting through BKPT 0xAB (QEMU: -semihosting-config enable=on,target=native): the debug
 * channel and ea_board_exit of the QEMU ports. Never on hardware: without a debugger attached, BKPT
 * escalates to a HardFault (cm_halt.c is the hardware counterpart). */
#include "cm_port.h"
#include "ea_board.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static int semihost_call(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void cm_debug_write0(const char *s) { (void)semihost_call(SYS_WRITE0, s); }

_Noreturn void ea_board_exit(int code)
{
    /* SYS_EXIT_EXTENDED carries the exit code to QEMU's own exit status. */
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    (void)semihost_call(SYS_EXIT_EXTENDED, block);
    for (;;) {
        __asm volatile("wfi");
    }
}
