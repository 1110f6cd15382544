"""Building the C firmware for a model and running it on QEMU-emulated Cortex-M boards."""
