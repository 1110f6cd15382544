/* The hardware counterpart of cm_semihost.c: no debug channel (the fault line goes out on the UART
 * only), and ea_board_exit halts with interrupts off, keeping the code where a debugger finds it. */
#include "cm_port.h"
#include "ea_board.h"

volatile int cm_exit_code; /* read it with a debugger (pyocd commander: `read32 &cm_exit_code`) */

void cm_debug_write0(const char *s) { (void)s; }

_Noreturn void ea_board_exit(int code)
{
    cm_exit_code = code;
    __asm volatile("cpsid i" ::: "memory");
    for (;;) {
        __asm volatile("wfi");
    }
}
