// Test driver for `edgeattack export --format tflm` output (compiled by tests/test_tflite_export.py).
// Writes the embedded model bytes to stdout; on stderr: the ops RegisterOps added (one per line), then
// "len=<g_..._len> sha=<embedded sha> aligned=<0|1> ops=<count> capacity=<kNumOps> arena=<size>".
// EA_NAME is the export's --name (passed with -D).
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"

#define EA_CAT2(a, b) a##b
#define EA_CAT(a, b) EA_CAT2(a, b)
#define EA_DATA EA_CAT(EA_CAT(g_, EA_NAME), _model_data)
#define EA_LEN EA_CAT(EA_CAT(g_, EA_NAME), _model_data_len)
#define EA_SHA EA_CAT(EA_CAT(g_, EA_NAME), _model_sha256)
#define EA_NS EA_CAT(EA_NAME, _model)

int main() {
  EA_NS::OpResolver resolver;
  if (EA_NS::RegisterOps(resolver) != kTfLiteOk) {
    std::fprintf(stderr, "RegisterOps failed\n");
    return 3;
  }
  for (unsigned int i = 0; i < resolver.GetRegistrationLength(); ++i) {
    std::fprintf(stderr, "%s\n", resolver.RegisteredName(i));
  }
  if (std::strcmp(EA_SHA, EA_NS::kModelSha256) != 0 ||
      static_cast<int>(EA_LEN) != EA_NS::kModelDataLen) {
    std::fprintf(stderr, "settings disagree with model_data\n");
    return 4;
  }
  std::fprintf(stderr, "len=%u sha=%s aligned=%d ops=%u capacity=%u arena=%d classes=%d\n", EA_LEN, EA_SHA,
               static_cast<int>(reinterpret_cast<std::uintptr_t>(EA_DATA) % 16 == 0),
               resolver.GetRegistrationLength(), EA_NS::kNumOps, EA_NS::kTensorArenaSize,
               EA_NS::kNumClasses);
  return std::fwrite(EA_DATA, 1, EA_LEN, stdout) == EA_LEN ? 0 : 5;
}
