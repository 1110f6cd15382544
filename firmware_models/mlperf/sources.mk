# Sources of MLPerf Tiny's DUT protocol engine (the MLPerf-mode firmware, EA_APP=mlperf), relative to
# firmware_models/. It includes only its own header and util/ (-Imlperf -Iutil).
EA_MLPERF_SRCS := mlperf/ea_dut.c
