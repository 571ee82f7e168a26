/**
 * The OpenAI-compatible HTTP server of {@code kvasir serve}: {@code /v1/completions},
 * {@code /v1/chat/completions} (plain JSON or Server-Sent Events), {@code /v1/models},
 * {@code /health} and {@code /metrics} (Prometheus text), on the JDK's
 * {@code com.sun.net.httpserver} over an {@link io.kvasir.engine.EngineLoop}. See docs/server.md.
 */
package io.kvasir.server;
