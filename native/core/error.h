// Errors inside the library are C++ exceptions (kv::Error); every exported function catches
// them at the ABI boundary (KV_API_BEGIN/KV_API_END), stores the message in the thread's
// last-error slot and returns the status. No exception crosses into C or Java frames.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "kvasir/kvasir.h"

namespace kv {

class Error : public std::runtime_error {
 public:
  Error(kv_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  kv_status status() const { return status_; }

 private:
  kv_status status_;
};

// Builds a message from any streamable parts: fail(KV_STATUS_INVALID_ARGUMENT, "rows=", rows).
template <typename... Parts>
[[noreturn]] void fail(kv_status status, Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  throw Error(status, out.str());
}

// Sets the calling thread's last-error message.
void set_last_error(const std::string& message);

// Translates the in-flight exception into a status and last-error message, prefixed by the
// name of the ABI function so that every message says which call failed.
kv_status status_from_exception(const char* function) noexcept;

}  // namespace kv

// Wraps the body of an exported kv_status function.
#define KV_API_BEGIN try {
#define KV_API_END                              \
  return KV_STATUS_OK;                          \
  }                                             \
  catch (...) {                                 \
    return kv::status_from_exception(__func__); \
  }

// Argument checks that name the argument and the rule it broke.
#define KV_REQUIRE(cond, ...)                                          \
  do {                                                                 \
    if (!(cond)) kv::fail(KV_STATUS_INVALID_ARGUMENT, __VA_ARGS__);    \
  } while (0)
#define KV_REQUIRE_NOT_NULL(ptr) KV_REQUIRE((ptr) != nullptr, #ptr " is NULL")
