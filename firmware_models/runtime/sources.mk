# The runtime's sources, shared by the host harness, the fuzzer and the firmware builds:
#   include $(EA_RUNTIME_DIR)/sources.mk   (EA_RUNTIME_DIR = this folder)
# The runtime includes only its own headers and util/ (EA_RUNTIME_CFLAGS); a program using it links
# EA_UTIL_SRCS too (util/sources.mk, included here).
# Recommended flags: -std=c11 -O2 -ffp-contract=off (bit-exactness needs no fused multiply-add), link -lm.
# Operators are ops/*.c (one file each, listed in ea_ops.c's table). EA_KERNELS (a board's board.mk
# sets it; default ref) adds kernels/$(EA_KERNELS)/*.c, instruction-set variants that replace the
# reference kernels of the same name (kernels/README.md).
EA_KERNELS ?= ref
EA_RUNTIME_SRCS := $(addprefix $(EA_RUNTIME_DIR)/, \
    ea_model.c ea_flatbuffer.c ea_plan.c ea_quant.c ea_opnames.c ea_ops.c ea_op_util.c) \
    $(sort $(wildcard $(EA_RUNTIME_DIR)/ops/*.c)) $(sort $(wildcard $(EA_RUNTIME_DIR)/kernels/$(EA_KERNELS)/*.c))
EA_RUNTIME_HDRS := $(wildcard $(EA_RUNTIME_DIR)/*.h $(EA_RUNTIME_DIR)/kernels/$(EA_KERNELS)/*.h)
EA_UTIL_DIR := $(abspath $(EA_RUNTIME_DIR)/../util)
include $(EA_UTIL_DIR)/sources.mk
EA_RUNTIME_CFLAGS := -std=c11 -ffp-contract=off -I$(EA_RUNTIME_DIR) -I$(EA_UTIL_DIR)
