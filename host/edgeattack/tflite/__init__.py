"""Reading, analysing and exporting .tflite flatbuffers (inspect, TFLM arena search, C/C++ export)."""
