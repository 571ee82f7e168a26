package io.kvasir.nativeapi;

/**
 * Properties of one device ({@code kv_device_props}).
 *
 * @param name "NVIDIA H200", or the host CPU model
 * @param arch "sm_90", or the CPU SIMD level in use ("avx2")
 * @param totalMemoryBytes device memory, or host RAM
 * @param computeUnits multiprocessors, or logical CPU cores
 * @param computeMajor CUDA compute capability; 0 on the CPU
 * @param pciBusId -1 on the CPU
 * @param l2CacheBytes 0 where unknown
 * @param sharedMemoryPerBlockBytes opt-in maximum; 0 on the CPU
 */
public record DeviceInfo(Backend backend, int ordinal, String name, String arch, long totalMemoryBytes,
    int computeUnits, int computeMajor, int computeMinor, int pciBusId, long l2CacheBytes,
    long sharedMemoryPerBlockBytes) {}
