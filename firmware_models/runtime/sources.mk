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
# The two files holding the operator table and the operator names: a firmware build compiles them per
# model with the builtins it uses selected (ea_select.h; the Makefile's EA_OPS), the host with all.
EA_RUNTIME_SELECT_SRCS := $(addprefix $(EA_RUNTIME_DIR)/, ea_ops.c ea_opnames.c)
# Files that run only while a model loads (parsing, planning, the tables): a firmware compiles them
# for size (-Os); the operators' prepare functions are marked EA_COLD (ea_ops.h) for the same reason.
EA_RUNTIME_COLD_SRCS := $(addprefix $(EA_RUNTIME_DIR)/, \
    ea_model.c ea_flatbuffer.c ea_plan.c ea_quant.c ea_opnames.c ea_ops.c)
# Operators whose work is tiny beside the layers before them (a softmax over the classes): a firmware
# compiles them for size too. ADD and the poolings stay -O2: -Os saves about 500 bytes on resnet8 but
# costs 2% of its instructions (docs/benchmarks.md, "Footprint with the model prepared on the host").
EA_RUNTIME_SMALL_SRCS := $(addprefix $(EA_RUNTIME_DIR)/ops/, softmax.c)
EA_RUNTIME_HDRS := $(wildcard $(EA_RUNTIME_DIR)/*.h $(EA_RUNTIME_DIR)/kernels/$(EA_KERNELS)/*.h)
EA_UTIL_DIR := $(abspath $(EA_RUNTIME_DIR)/../util)
include $(EA_UTIL_DIR)/sources.mk
EA_RUNTIME_CFLAGS := -std=c11 -ffp-contract=off -I$(EA_RUNTIME_DIR) -I$(EA_UTIL_DIR)
