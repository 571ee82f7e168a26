// Command-line reading the bench runners share: a flag's value, and --backend.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kvasir/kvasir.h"

namespace kvt {

// The value after flag argv[i] (i moves onto it); exits 2 naming the flag when there is none.
inline std::string flag_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

// --backend cpu|cuda; anything else is refused with a message (false).
inline bool parse_backend(const std::string& name, kv_backend* out) {
  if (name != "cpu" && name != "cuda") {
    std::fprintf(stderr, "--backend must be cpu or cuda, not %s\n", name.c_str());
    return false;
  }
  *out = name == "cuda" ? KV_BACKEND_CUDA : KV_BACKEND_CPU;
  return true;
}

}  // namespace kvt
