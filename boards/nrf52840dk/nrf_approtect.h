/* Access port protection on nRF52840 silicon from build code Fxx (revision 3) on: the debug port is
 * locked after every reset unless the firmware opens it, so a DK flashed once could not be flashed
 * again without a full erase. The rule here is Nordic's own (nRF52840 Product Specification, "AP-Protect"
 * and the APPROTECT.DISABLE register; nRF MDK's "configuration 249" check for which silicon has it):
 * UICR.APPROTECT's PALL byte 0x5A (HwDisabled) lets the firmware open the port by writing 0x5A
 * (SwDisable) to APPROTECT.DISABLE at each boot. This firmware is a measurement tool, so it keeps the port
 * open: it programs an erased UICR.APPROTECT to HwDisabled once, and leaves a UICR that anything else
 * set (0x00: protection wanted) alone. Kept apart from board.c so that the host can test the decision. */
#ifndef NRF_APPROTECT_H
#define NRF_APPROTECT_H

#include <stdint.h>

#define NRF_FICR_CONF0 0x10000130u     /* the two FICR words the MDK reads to tell silicon revisions apart */
#define NRF_FICR_CONF1 0x10000134u
#define NRF_UICR_APPROTECT 0x10001208u /* PALL in bits 7:0; an erased UICR reads 0xFFFFFFFF */
#define NRF_APPROTECT_DISABLE 0x40000558u
#define NRF_APPROTECT_HW_DISABLED 0xFFFFFF5Au /* PALL = HwDisabled, the reserved bits left erased */
#define NRF_APPROTECT_SW_DISABLE 0x5Au

enum { NRF_AP_PROGRAM_UICR = 1, NRF_AP_OPEN = 2 };

/* What to do at boot, as NRF_AP_* flags: nothing on older silicon (its port is open while UICR is
 * erased) or when UICR asks for protection; program UICR when it is erased; open the port when UICR
 * is, or is about to be, HwDisabled. conf0/conf1: the FICR words; uicr: UICR.APPROTECT. */
static inline unsigned nrf_approtect_plan(uint32_t conf0, uint32_t conf1, uint32_t uicr)
{
    if (conf0 != 0x08u || conf1 <= 0x04u) {
        return 0u; /* not an nRF52840, or a revision before the hardened AP-Protect */
    }
    const uint32_t pall = uicr & 0xFFu;
    if (pall == 0xFFu) {
        return NRF_AP_PROGRAM_UICR | NRF_AP_OPEN;
    }
    return pall == 0x5Au ? NRF_AP_OPEN : 0u;
}

#endif
