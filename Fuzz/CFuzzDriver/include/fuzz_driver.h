#ifndef GATEWAY_FUZZ_DRIVER_H
#define GATEWAY_FUZZ_DRIVER_H
#include <stddef.h>

/// libFuzzer's entry for programs that have their own main (compiler-rt FuzzerInterface.h).
/// SwiftPM renames an executable's main.swift entry point and points `main` at it, which hides
/// libFuzzer's own main; the fuzz targets call this from their top-level code instead.
int LLVMFuzzerRunDriver(int *_Nonnull argc, char *_Nullable *_Nullable *_Nonnull argv,
                        int (*_Nonnull callback)(const void *_Nonnull data, size_t size));

#endif
