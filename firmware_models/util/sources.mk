# The lowest layer: helpers every other layer may use (the one bounded string builder).
#   include $(EA_UTIL_DIR)/sources.mk   (EA_UTIL_DIR = this folder)
EA_UTIL_SRCS := $(EA_UTIL_DIR)/ea_strbuf.c
EA_UTIL_HDRS := $(wildcard $(EA_UTIL_DIR)/*.h)
