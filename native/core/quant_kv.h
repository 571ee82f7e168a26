// Quantized KV blocks (Kitty, KIVI-2): the block layout, the code placement inside its bit planes,
// fp16 with directed rounding, and the quantizer itself. Plain code shared by g++ and nvcc, so the
// CPU reference and the CUDA kernels pack and read the same bytes through the same arithmetic
// (kv_quant_pack_async is bit-identical on both backends).
//
// Bit planes. A plane holds 2-bit codes of an R x C matrix (R rows, C columns, both multiples of
// 16): the keys' low and high planes are tokens x channels (boosted slots for the high plane),
// the values' plane is channels x tokens. It is stored in the order in which the CUDA decode
// kernel feeds it to mma.m16n8k16 as the A operand (16 x 16 fp16 tiles, row-major): rows go in
// m-tiles of 16, and each of the 32 lanes of a warp owns C/8 bytes per m-tile, holding the 8
// codes per 16-column k-step that its A fragment needs (rows lane/4 and lane/4 + 8, columns
// 2*(lane%4) + {0, 1} and + 8). One m-tile of a plane is thus 32 consecutive C/8-byte units: a
// warp reads it with one coalesced load per lane (16 bytes for C = 128), with no shuffle and
// no shared-memory transpose. Inside a unit, k-steps go in pairs into 32-bit words: register
// `reg` (0..3) of k-step ks holds two fp16 (columns c, c + 1, the low half first); its two codes
// sit at bits 2p and 16 + 2p with p = (ks % 2) * 4 + reg, so that one lop3 with the fp16
// exponent 0x6400 turns both into fp16 values at once (see cuda/quant_kv.cu). An odd last
// k-step is a 16-bit unit: codes at bits 2*reg (low halves) and 8 + 2*reg (high halves).
#pragma once

#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cmath>
#include <cstring>
#endif

#include "core/op_args.h"

namespace kv::quant {

constexpr uint8_t kNoChannel = 0xFF;  // boost slot padding

// Boosted channels rounded up to whole 16-column k-steps of the high plane: 16, or a multiple
// of 32 (so that every plane unit is one 16-bit unit or whole 32-bit words).
KV_HOST_DEVICE int32_t boost_slots(int32_t boost_channels) {
  if (boost_channels <= 0) return 0;
  if (boost_channels <= 16) return 16;
  return (boost_channels + 31) / 32 * 32;
}

KV_HOST_DEVICE uint64_t align16(uint64_t x) { return (x + 15) / 16 * 16; }

// Byte offsets of one (block, head): the ABI's kv_quant_layout.
struct Layout {
  uint64_t k_low = 0, k_high = 0, k_scale = 0, k_min = 0, boost = 0, v_codes = 0, v_scale = 0, v_min = 0, bytes = 0;
};

KV_HOST_DEVICE Layout layout_of(int32_t G, int32_t D, int32_t boost_channels) {
  const uint64_t nbp = static_cast<uint64_t>(boost_slots(boost_channels));
  Layout l;
  uint64_t at = 0;
  l.k_low = at;
  at += align16(static_cast<uint64_t>(G) * D / 4);
  l.k_high = at;
  at += align16(static_cast<uint64_t>(G) * nbp / 4);
  l.k_scale = at;
  at += align16(static_cast<uint64_t>(D) * 2);
  l.k_min = at;
  at += align16(static_cast<uint64_t>(D) * 2);
  l.boost = at;
  at += align16(nbp);
  l.v_codes = at;
  at += align16(static_cast<uint64_t>(G) * D / 4);
  l.v_scale = at;
  at += align16(static_cast<uint64_t>(G) * 2);
  l.v_min = at;
  at += align16(static_cast<uint64_t>(G) * 2);
  l.bytes = at;
  return l;
}

// kv_quant_kv after validation.
struct QuantKv {
  void* blocks = nullptr;
  int64_t num_blocks = 0;
  int64_t block_stride = 0;  // bytes
  int64_t head_stride = 0;   // bytes
  int32_t num_kv_heads = 0;
  int32_t sink_tokens = 0;
  int32_t group_tokens = 0;  // G
  int32_t head_dim = 0;      // D
  int32_t boost_channels = 0;
  Layout layout;

  KV_HOST_DEVICE int64_t offset(int64_t block, int32_t head) const { return block * block_stride + head * head_stride; }
};

// kv_quant_table after validation.
struct QuantTable {
  const int32_t* blocks = nullptr;
  int64_t seq_stride = 0;
  const int32_t* counts = nullptr;
};

// Where code (row, col) of an R x C plane lives: byte offset of its 32-bit word (or 16-bit unit)
// and the bit of its low bit inside that word or unit.
struct CodeAt {
  int64_t unit_byte;  // offset of the word / 16-bit unit holding the code
  int32_t bit;
  bool wide;          // a 32-bit word (else a 16-bit unit)
};

KV_HOST_DEVICE CodeAt code_at(int32_t C, int32_t row, int32_t col) {
  const int32_t mt = row / 16, r = row % 16, ks = col / 16, c = col % 16;
  const int32_t lane = (r % 8) * 4 + (c % 8) / 2, reg = r / 8 + 2 * (c / 8), half = c % 2;
  const int64_t unit = (static_cast<int64_t>(mt) * 32 + lane) * (C / 8);
  const int32_t ksteps = C / 16;
  CodeAt at;
  if (ks / 2 < ksteps / 2) {  // inside a pair of k-steps: a 32-bit word
    at.unit_byte = unit + (ks / 2) * 4;
    at.bit = half * 16 + ((ks % 2) * 4 + reg) * 2;
    at.wide = true;
  } else {  // the odd last k-step: a 16-bit unit
    at.unit_byte = unit + (ks / 2) * 4;
    at.bit = half * 8 + reg * 2;
    at.wide = false;
  }
  return at;
}

// The inverse: (row, col) of code i (0..15) of 32-bit word w of the unit of (m-tile mt, lane),
// i = half * 8 + p (bit 16 * half + 2 * p). For a 16-bit unit, i = half * 4 + reg (bit 8 * half + 2 * reg).
KV_HOST_DEVICE void word_code(int32_t mt, int32_t lane, int32_t w, int32_t i, bool wide, int32_t* row, int32_t* col) {
  int32_t half, ks, reg;
  if (wide) {
    half = i / 8;
    const int32_t p = i % 8;
    ks = 2 * w + p / 4;
    reg = p % 4;
  } else {
    half = i / 4;
    ks = 2 * w;
    reg = i % 4;
  }
  *row = mt * 16 + lane / 4 + 8 * (reg % 2);
  *col = ks * 16 + 2 * (lane % 4) + half + 8 * (reg / 2);
}

KV_HOST_DEVICE uint32_t read_code(const uint8_t* plane, int32_t C, int32_t row, int32_t col) {
  const CodeAt at = code_at(C, row, col);  // a 2-bit code never straddles a byte (even bit)
  return (static_cast<uint32_t>(plane[at.unit_byte + at.bit / 8]) >> (at.bit % 8)) & 3u;
}

// ORs a 2-bit code into a zeroed plane.
KV_HOST_DEVICE void write_code(uint8_t* plane, int32_t C, int32_t row, int32_t col, uint32_t code) {
  const CodeAt at = code_at(C, row, col);
  plane[at.unit_byte + at.bit / 8] |= static_cast<uint8_t>((code & 3u) << (at.bit % 8));
}

// --- fp16 ------------------------------------------------------------------------------------

KV_HOST_DEVICE uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

KV_HOST_DEVICE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

KV_HOST_DEVICE bool is_nan(float f) { return (float_bits(f) & 0x7fffffffu) > 0x7f800000u; }

// fp16 bits -> float (exact; one cvt on the device).
KV_HOST_DEVICE float half_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    // Subnormal: man * 2^-24, exact in fp32.
    const float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

// float -> fp16, round to nearest even (NaN stays NaN, overflow gives infinity).
KV_HOST_DEVICE uint16_t float_to_half_rn(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: rounds to infinity
  if (a < 0x38800000u) {  // below 2^-14: subnormal (or zero), value = m * 2^-24
    if (a < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to 0
    const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // m * 2^(e - 150) = (m >> (126 - e)) * 2^-24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = ((a >> 13) - (112u << 10));
  const uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

KV_HOST_DEVICE uint16_t half_next_up(uint16_t h) {
  if ((h & 0x7fffu) == 0) return 0x0001u;
  return (h & 0x8000u) ? static_cast<uint16_t>(h - 1u) : static_cast<uint16_t>(h + 1u);
}

KV_HOST_DEVICE uint16_t half_next_down(uint16_t h) {
  if ((h & 0x7fffu) == 0) return 0x8001u;
  return (h & 0x8000u) ? static_cast<uint16_t>(h + 1u) : static_cast<uint16_t>(h - 1u);
}

constexpr float kHalfMax = 65504.f;

// The largest fp16 <= f, f clipped to [-65504, 65504] first (finite f).
KV_HOST_DEVICE uint16_t float_to_half_down(float f) {
  f = f > kHalfMax ? kHalfMax : (f < -kHalfMax ? -kHalfMax : f);
  uint16_t h = float_to_half_rn(f);
  if (half_to_float(h) > f) h = half_next_down(h);
  return h;
}

// The smallest fp16 >= f, f clipped to [-65504, 65504] first (finite f).
KV_HOST_DEVICE uint16_t float_to_half_up(float f) {
  f = f > kHalfMax ? kHalfMax : (f < -kHalfMax ? -kHalfMax : f);
  uint16_t h = float_to_half_rn(f);
  if (half_to_float(h) < f) h = half_next_up(h);
  return h;
}

constexpr uint16_t kHalfNaN = 0x7e00u;

// --- the quantizer -----------------------------------------------------------------------------

// Asymmetric grid of one group of values with levels codes 0..levels: min rounded down and scale
// rounded up to fp16, so that min + levels * scale >= max (up to the fp32 rounding of the
// division) and every value is within scale / 2 of its code's value. A NaN among the values makes
// the scale NaN, so the group dequantizes to NaN rather than to something plausible.
struct Grid {
  uint16_t scale, min;
};

KV_HOST_DEVICE Grid make_grid(float mn, float mx, bool has_nan, int32_t levels) {
  Grid g;
  if (has_nan) {
    g.scale = kHalfNaN;
    g.min = kHalfNaN;
    return g;
  }
  g.min = float_to_half_down(mn);
  const float lo = half_to_float(g.min);
  const float mxc = mx > kHalfMax ? kHalfMax : mx;
  const float span = mxc > lo ? mxc - lo : 0.f;
  g.scale = float_to_half_up(span / static_cast<float>(levels));
  return g;
}

// The code of x on grid g: round((x - min) / scale) to nearest even, clamped to [0, levels].
KV_HOST_DEVICE uint32_t quantize(float x, float scale, float min, int32_t levels) {
  if (!(scale > 0.f)) return 0u;  // a flat group (or NaN: its scale already poisons it)
  const float t = (x - min) / scale;
#if defined(__CUDA_ARCH__)
  const float r = rintf(t);
#else
  const float r = std::nearbyint(t);
#endif
  if (!(r > 0.f)) return 0u;
  const float top = static_cast<float>(levels);
  return r >= top ? static_cast<uint32_t>(levels) : static_cast<uint32_t>(r);
}

// The value of a code: one fused multiply-add, the same on both backends.
KV_HOST_DEVICE float dequantize(uint32_t code, float scale, float min) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(static_cast<float>(code), scale, min);
#else
  return std::fma(static_cast<float>(code), scale, min);
#endif
}

// Rank of channel d among D channels by sum |k| (descending, ties to the lower channel): the
// channel is boosted iff rank < boost_channels. The same comparisons on both backends.
KV_HOST_DEVICE int32_t boost_rank(const float* sum_abs, int32_t D, int32_t d) {
  const float s = sum_abs[d];
  int32_t rank = 0;
  for (int32_t e = 0; e < D; ++e) rank += (sum_abs[e] > s || (sum_abs[e] == s && e < d)) ? 1 : 0;
  return rank;
}

}  // namespace kv::quant
