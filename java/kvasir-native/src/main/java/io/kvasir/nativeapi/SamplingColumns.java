package io.kvasir.nativeapi;

import java.util.List;

/**
 * The per-sequence sampling parameters of a step as the C ABI takes them: one array per field,
 * sequence by sequence. Built once per step from {@link StepBatch.Sampling} values, for slot and
 * paged steps alike.
 */
record SamplingColumns(float[] temperature, int[] topK, float[] topP, float[] minP, float[] repetitionPenalty,
    long[] seed, long[] requestId) {
  static SamplingColumns of(List<StepBatch.Sampling> samplings) {
    int n = samplings.size();
    SamplingColumns c = new SamplingColumns(new float[n], new int[n], new float[n], new float[n], new float[n],
        new long[n], new long[n]);
    for (int i = 0; i < n; ++i) {
      StepBatch.Sampling s = samplings.get(i);
      c.temperature[i] = s.temperature();
      c.topK[i] = s.topK();
      c.topP[i] = s.topP();
      c.minP[i] = s.minP();
      c.repetitionPenalty[i] = s.repetitionPenalty();
      c.seed[i] = s.seed();
      c.requestId[i] = s.requestId();
    }
    return c;
  }
}
