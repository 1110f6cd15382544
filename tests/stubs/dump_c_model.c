/* Test driver for `edgeattack export --format c` output (compiled by tests/test_tflite_export.py).
   Writes ea_model_data to stdout; on stderr "len=<n> sha=<sha> aligned=<0|1> arena=<n> classes=<n>
   input=<scale>,<zero point> label0=<first label>". */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model_data.h"
#include "model_settings.h"

int main(void) {
  static const char* const labels[EA_NUM_CLASSES] = EA_LABELS;
  static const int input_shape[EA_INPUT_DIMS] = EA_INPUT_SHAPE;
  int elements = 1;
  for (int i = 0; i < EA_INPUT_DIMS; ++i) elements *= input_shape[i];
  if (elements != EA_INPUT_SIZE || strcmp(ea_model_sha256, EA_MODEL_SHA256) != 0 ||
      ea_model_data_len != EA_MODEL_DATA_LEN || strlen(ea_model_sha256) != 64) {
    fprintf(stderr, "settings disagree with model_data\n");
    return 4;
  }
  fprintf(stderr, "len=%u sha=%s aligned=%d arena=%d classes=%d input=%.9g,%d label0=%s\n", ea_model_data_len,
          ea_model_sha256, (int)((uintptr_t)ea_model_data % 16 == 0), EA_TFLM_ARENA_SIZE, EA_NUM_CLASSES,
          (double)EA_INPUT_SCALE, 0 - EA_INPUT_ZERO_POINT, labels[0]);
  return fwrite(ea_model_data, 1, ea_model_data_len, stdout) == ea_model_data_len ? 0 : 5;
}
