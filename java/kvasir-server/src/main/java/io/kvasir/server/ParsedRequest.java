package io.kvasir.server;

import io.kvasir.engine.GenerationRequest;

/**
 * A validated completion or chat request.
 *
 * @param chat          {@code /v1/chat/completions} (else {@code /v1/completions})
 * @param request       what the engine runs per sample (logprobs included when asked)
 * @param n             samples of the prompt
 * @param stream        answer with Server-Sent Events
 * @param includeUsage  {@code stream_options.include_usage}: a last chunk with usage and no choices
 * @param logprobs      return the chosen tokens' log-probabilities
 * @param topLogprobs   alternatives per position when {@code logprobs} (0..20)
 */
record ParsedRequest(boolean chat, GenerationRequest request, int n, boolean stream, boolean includeUsage,
    boolean logprobs, int topLogprobs) {

  int promptTokens() {
    return request.promptTokens().length;
  }
}
