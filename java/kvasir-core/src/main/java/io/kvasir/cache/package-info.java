/**
 * The paged KV cache's bookkeeping on the host: page slots, reference counts, the LRU list of
 * free pages and the hash-chained prefix cache. Plain Java, tested without native code; the pages'
 * bytes live in native memory (GPU or pinned host) at the slot index this package hands out.
 */
package io.kvasir.cache;
