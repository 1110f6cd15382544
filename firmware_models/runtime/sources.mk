# The runtime's sources, shared by the host harness, the fuzzer and the firmware builds:
#   include $(EA_RUNTIME_DIR)/sources.mk   (EA_RUNTIME_DIR = this folder)
# The runtime includes only its own headers and util/ (EA_RUNTIME_CFLAGS); a program using it links
# EA_UTIL_SRCS too (util/sources.mk, included here).
# Recommended flags: -std=c11 -O2 -ffp-contract=off (bit-exactness needs no fused multiply-add), link -lm.
EA_RUNTIME_SRCS := $(addprefix $(EA_RUNTIME_DIR)/, \
    ea_model.c ea_flatbuffer.c ea_plan.c ea_quant.c ea_opnames.c \
    conv_s8.c depthwise_conv_s8.c fully_connected_s8.c pooling_s8.c add_s8.c mean_s8.c pad_s8.c \
    softmax_s8.c quantize.c dequantize.c reshape.c)
EA_RUNTIME_HDRS := $(wildcard $(EA_RUNTIME_DIR)/*.h)
EA_UTIL_DIR := $(abspath $(EA_RUNTIME_DIR)/../util)
include $(EA_UTIL_DIR)/sources.mk
EA_RUNTIME_CFLAGS := -std=c11 -ffp-contract=off -I$(EA_RUNTIME_DIR) -I$(EA_UTIL_DIR)
