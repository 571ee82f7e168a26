/**
 * The inference engine: loads a model (a Hugging Face checkpoint or a synthetic preset) onto a
 * device, plans steps over a batch of requests and runs each step in one native call, then
 * streams tokens back. The paged cache and continuous-batching scheduler replace the simple
 * static batching here.
 */
package io.kvasir.engine;
