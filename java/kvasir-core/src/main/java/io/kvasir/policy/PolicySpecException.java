package io.kvasir.policy;

/** A policy spec that cannot be used; the message names the spec, the component and the fix. */
public final class PolicySpecException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  public PolicySpecException(String message) {
    super(message);
  }
}
