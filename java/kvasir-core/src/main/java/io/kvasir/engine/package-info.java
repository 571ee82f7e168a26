/**
 * The inference engine: loads a model (a Hugging Face checkpoint or a synthetic preset) onto a
 * device, plans steps over a batch of requests and runs each step in one native call, then
 * streams tokens back. The paged cache and continuous-batching scheduler replace the simple
 * static batching here.
 *
 * <p>Two ways to run requests: the {@link io.kvasir.engine.Engine}'s synchronized batch calls
 * ({@code generateAll}, {@code serve}, ...), or an {@link io.kvasir.engine.EngineLoop} for online
 * serving, which takes requests from any thread and steps the scheduler on its own thread. Both
 * drive the same step loop ({@code PagedRun}); while a loop runs, the batch calls are refused.
 */
package io.kvasir.engine;
