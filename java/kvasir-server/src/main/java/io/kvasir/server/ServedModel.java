package io.kvasir.server;

import io.kvasir.engine.Engine;
import io.kvasir.policy.Policy;
import java.util.Objects;

/**
 * What the server serves: one engine under one cache policy, known to clients by {@code id}.
 *
 * @param id     the model name of {@code /v1/models} and of the requests' {@code model} field
 * @param engine the engine behind the loop (its tokenizer and limits; generation goes through the loop)
 * @param policy the engine's cache policy; a request's {@code kvasir_policy} must equal it
 */
public record ServedModel(String id, Engine engine, Policy policy) {
  public ServedModel {
    Objects.requireNonNull(id, "id");
    Objects.requireNonNull(engine, "engine");
    Objects.requireNonNull(policy, "policy");
  }

  /** Whether a request's {@code model} names this model: its id, or the engine's model name. */
  boolean answersTo(String name) {
    return name.equals(id) || name.equals(engine.modelName());
  }
}
