#include "core/error.h"

#include <new>

namespace kv {
namespace {
thread_local std::string t_last_error;
}  // namespace

void set_last_error(const std::string& message) { t_last_error = message; }

const std::string& last_error() { return t_last_error; }

kv_status status_from_exception(const char* function) noexcept {
  try {
    throw;
  } catch (const Error& e) {
    try {
      set_last_error(std::string(function) + ": " + e.what());
    } catch (...) {
    }
    return e.status();
  } catch (const std::bad_alloc&) {
    try {
      set_last_error(std::string(function) + ": host allocation failed (std::bad_alloc)");
    } catch (...) {
    }
    return KV_STATUS_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    try {
      set_last_error(std::string(function) + ": internal error: " + e.what());
    } catch (...) {
    }
    return KV_STATUS_INTERNAL;
  } catch (...) {
    try {
      set_last_error(std::string(function) + ": internal error: unknown exception");
    } catch (...) {
    }
    return KV_STATUS_INTERNAL;
  }
}

}  // namespace kv

extern "C" {

const char* kv_last_error(void) { return kv::last_error().c_str(); }

void kv_clear_last_error(void) { kv::t_last_error.clear(); }

const char* kv_status_to_string(kv_status status) {
  switch (status) {
    case KV_STATUS_OK: return "KV_STATUS_OK";
    case KV_STATUS_INVALID_ARGUMENT: return "KV_STATUS_INVALID_ARGUMENT";
    case KV_STATUS_OUT_OF_MEMORY: return "KV_STATUS_OUT_OF_MEMORY";
    case KV_STATUS_UNSUPPORTED: return "KV_STATUS_UNSUPPORTED";
    case KV_STATUS_NO_DEVICE: return "KV_STATUS_NO_DEVICE";
    case KV_STATUS_DEVICE_ERROR: return "KV_STATUS_DEVICE_ERROR";
    case KV_STATUS_INTERNAL: return "KV_STATUS_INTERNAL";
  }
  return "KV_STATUS_UNKNOWN";
}

}  // extern "C"
