// Orders shared by the CPU reference and the CUDA kernels of the Quest operations
// (kv_page_summary_update_async, kv_quest_select_async), so that both backends agree bit for bit
// whatever order they reduce in.
//
//  - Summary minima and maxima compare elements by IEEE 754 totalOrder on their raw bits
//    (-NaN < -inf < ... < -0 < +0 < ... < +inf < +NaN): min and max are then associative and
//    commutative on bits, so a parallel reduction returns exactly the sequential one's bits.
//  - Page scores rank by a 32-bit key, larger first: -0 counts as +0, NaN ranks below -inf
//    (a page with a NaN score is chosen last). Ties between equal keys go to the lower page.
#pragma once

#include <cstdint>

#include "core/op_args.h"

namespace kv {

// Unsigned keys whose integer order is totalOrder of the encoded float (fp32 or bf16 bits).
KV_HOST_DEVICE uint32_t total_order_key(uint32_t bits) { return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u); }
KV_HOST_DEVICE uint32_t total_order_bits(uint32_t key) { return (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key; }
KV_HOST_DEVICE uint16_t total_order_key(uint16_t bits) {
  return static_cast<uint16_t>((bits & 0x8000u) ? ~bits : (bits | 0x8000u));
}
KV_HOST_DEVICE uint16_t total_order_bits(uint16_t key) {
  return static_cast<uint16_t>((key & 0x8000u) ? (key & 0x7fffu) : ~key);
}

// Rank key of a page score given as fp32 bits: larger key = better page.
KV_HOST_DEVICE uint32_t quest_score_key(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0;  // NaN: below every number
  if (bits == 0x80000000u) bits = 0;                 // -0 ranks as +0
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Workspace of the CUDA Quest selection: one rank key per (sequence, KV head, logical page).
inline uint64_t quest_select_workspace_bytes_for(int64_t batch, int64_t num_kv_heads, int64_t max_pages) {
  const uint64_t bytes = static_cast<uint64_t>(batch) * static_cast<uint64_t>(num_kv_heads) *
                         static_cast<uint64_t>(max_pages) * sizeof(uint32_t);
  return (bytes + 255) / 256 * 256;
}

}  // namespace kv
