# Sources of the device-side protocol, relative to firmware_models/ (used by the Makefile and the
# host-side unit tests). It includes only its own headers and util/ (-Iproto -Iutil).
EA_PROTO_SRCS := proto/ea_crc32.c proto/ea_cobs.c proto/ea_frame.c proto/ea_proto.c
