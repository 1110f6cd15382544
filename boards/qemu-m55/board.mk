# QEMU mps3-an547 (Cortex-M55 with MVE). Paths are relative to this port's folder.
BOARD_CPU_FLAGS := -mcpu=cortex-m55 -mfloat-abi=hard -mthumb
BOARD_SRCS := board.c
BOARD_LDSCRIPT := qemu-m55.ld
BOARD_COMMON := cortex-m
# SysTick ticks (QEMU has no DWT cycle counter), semihosting exit, the CMSDK UART.
BOARD_COMMON_SRCS := cm_startup.c cm_rxring.c cm_systick.c cm_semihost.c cmsdk_uart.c
QEMU_MACHINE := mps3-an547
# Kernel set (runtime/kernels/README.md): mve = the Helium kernels (VMLADAVA; the core also has the DSP
# extension, so --kernels dsp builds too). The host build passes EA_KERNELS itself
# (edgeattack.firmware.build.resolve_kernels, --kernels).
EA_KERNELS := mve
