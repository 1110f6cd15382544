# QEMU mps2-an386 (Cortex-M4F). Paths are relative to this port's folder.
BOARD_CPU_FLAGS := -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard -mthumb
BOARD_SRCS := board.c
BOARD_LDSCRIPT := qemu-m4.ld
BOARD_COMMON := cortex-m
# SysTick ticks (QEMU has no DWT cycle counter), semihosting exit, the CMSDK UART.
BOARD_COMMON_SRCS := cm_startup.c cm_rxring.c cm_systick.c cm_semihost.c cmsdk_uart.c
QEMU_MACHINE := mps2-an386
# Kernel set (runtime/kernels/README.md): dsp = the Armv7E-M DSP kernels (the core has SMLAD). The host
# build passes EA_KERNELS itself (edgeattack.firmware.build.resolve_kernels, --kernels).
EA_KERNELS := dsp
