/* Message texts kept out of flash. EA_MSG("text") marks a piece of an error message. A firmware build
 * (-DEA_MSG_CODED, firmware_models/Makefile) places the text in the ELF section .ea_msg, which the
 * linker script keeps out of the loaded image (type INFO, at 0xF0000000, an address no Cortex-M
 * port has memory at), so the piece costs flash only its 4-byte address. The string builder
 * (ea_strbuf.c) never reads such a text: it writes EA_MSG_MARK and the text's offset in .ea_msg as
 * four lower-case hex digits, and the host puts the text back from the ELF it built
 * (edgeattack.firmware.messages; docs/firmware.md, "Error messages"). Every other build (the host
 * harness, the fuzzers, the protocol tests, the MLPerf-mode firmware) keeps the plain text.
 *
 * Pass an EA_MSG text only to ea_sb_raw / ea_sb_json_str (directly or through the runtime's and the
 * protocol's error helpers): nothing else may read its bytes. */
#ifndef EA_MSG_H
#define EA_MSG_H

#define EA_MSG_MARK '\x1f' /* ASCII unit separator: never part of a message text */
#define EA_MSG_ARG '\x1e'  /* ends each number of an ea_sb_fmt message (record separator) */

#ifdef EA_MSG_CODED
#define EA_MSG(s)                                                                              \
    (__extension__({                                                                           \
        static const char ea_msg_text_[] __attribute__((section(".ea_msg"), aligned(1))) = s; \
        &ea_msg_text_[0];                                                                      \
    }))
#else
#define EA_MSG(s) (s)
#endif

#endif
