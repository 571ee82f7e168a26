// Causal prefill attention on tensor cores (bf16, head_dim 64 or 128), as a kernel over a
// small parameter struct, so that the ABI op (kv_attention_prefill_async: contiguous
// [batch][len][heads][head_dim] tensors) and the model runtime (queries in its activation
// buffer, K/V in its cache slots, sequences of different lengths in one launch) share it.
//
// The unit of work is a query tile: up to prefill_tile_rows(head_dim) consecutive query rows
// of one sequence. Query row r of a tile (0 <= r < q_count) sits at position q_pos0 + r and
// attends the keys at positions j in [0, q_pos0 + r], which are the K/V rows kv_row0 + j.
// One thread block computes one (tile, query head); query head h reads KV head
// h / (num_q_heads / num_kv_heads).
//
// Addressing (elements, not bytes; all tensors bf16 except lse):
//   q   row R, head h:   q + R * q_row_stride + h * head_dim              (R = q_row + r)
//   k,v row P, head g:   k + P * kv_row_stride + g * head_dim             (P = kv_row0 + j)
//   o   row R, head h:   o + R * o_row_stride + h * head_dim              (written, bf16)
//   lse row R, head h:   lse[R * lse_row_stride + h]  fp32 natural log    (written; lse may be null)
// Requirements (the launcher checks them and throws KV_STATUS_INVALID_ARGUMENT): q, k, v, o
// 16-byte aligned and q_row_stride, kv_row_stride, o_row_stride multiples of 8 (rows are
// copied with 16-byte cp.async). q_count >= 1 for every tile. The tile array and every tensor
// are device (or mapped pinned) memory.
//
// Two ways to name the tiles:
//   tiles != null (tile list): block x computes tiles[x]. Blocks start roughly in index order,
//     so put the tiles with the most keys first for the shortest tail.
//   tiles == null (uniform batch): num_tiles = batch * tiles_per_seq sequences of q_len
//     queries over kv_len keys, queries at the end (query i at position kv_len - q_len + i),
//     sequence b's queries at rows b * q_len, its keys at rows b * kv_len;
//     tiles_per_seq = ceil(q_len / prefill_tile_rows(head_dim)). Block x computes sequence
//     x / tiles_per_seq, query tile tiles_per_seq - 1 - x % tiles_per_seq (longest first).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kv::cuda {

struct PrefillTile {
  int32_t q_row;    // first query row (token) of the tile in q, o and lse
  int32_t q_count;  // rows in the tile, 1 .. prefill_tile_rows(head_dim)
  int32_t q_pos0;   // position of the first row; row r sits at q_pos0 + r
  int32_t unused;   // padding (keeps kv_row0 8-byte aligned explicitly)
  int64_t kv_row0;  // K/V row holding position 0 of the tile's sequence
};

struct PrefillParams {
  const uint16_t* q = nullptr;  // bf16
  int64_t q_row_stride = 0;     // elements between consecutive query rows (tokens); heads are head_dim apart
  const uint16_t* k = nullptr;  // bf16
  const uint16_t* v = nullptr;  // bf16
  int64_t kv_row_stride = 0;    // elements between consecutive positions; KV heads are head_dim apart
  uint16_t* o = nullptr;        // bf16, written
  int64_t o_row_stride = 0;
  float* lse = nullptr;         // may be null; lse[row * lse_row_stride + head], natural log
  int64_t lse_row_stride = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  float scale_log2 = 0.f;       // sm_scale * log2(e): the kernel's softmax runs in base 2
  const PrefillTile* tiles = nullptr;  // device array of num_tiles tiles, or null: uniform batch
  int32_t q_len = 0;            // uniform batch only
  int64_t kv_len = 0;           // uniform batch only
  int32_t tiles_per_seq = 0;    // uniform batch only
};

// Query rows per tile the tensor-core kernel uses for a head dim (128 for 64 and 128).
int prefill_tile_rows(int head_dim);

// Launches the kernel over num_tiles tiles (grid num_tiles x num_q_heads) on the stream of the
// current device. head_dim must be 64 or 128 (otherwise KV_STATUS_UNSUPPORTED). Throws
// kv::Error on invalid parameters or a failed launch, like the other kernels. num_tiles = 0
// launches nothing. Does not synchronize.
void launch_attention_prefill(const PrefillParams& p, int head_dim, int num_tiles, cudaStream_t stream);

}  // namespace kv::cuda
