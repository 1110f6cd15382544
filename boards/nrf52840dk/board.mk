# Nordic nRF52840 DK (PCA10056): nRF52840 (Cortex-M4F, 64 MHz). Paths are relative to this port's folder.
BOARD_CPU_FLAGS := -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard -mthumb
BOARD_SRCS := board.c
BOARD_LDSCRIPT := nrf52840dk.ld
BOARD_COMMON := cortex-m
# DWT cycle counter as the tick, halt on exit (no semihosting on hardware), the port's own UARTE driver.
BOARD_COMMON_SRCS := cm_startup.c cm_rxring.c cm_dwt.c cm_halt.c
# Kernel set (runtime/kernels/README.md): dsp = the Armv7E-M DSP kernels (the core has SMLAD).
EA_KERNELS := dsp
