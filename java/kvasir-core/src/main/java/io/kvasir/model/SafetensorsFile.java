package io.kvasir.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * One memory-mapped {@code .safetensors} file: an 8-byte little-endian header length N, N bytes
 * of UTF-8 JSON ({@code {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]},
 * "__metadata__": {..}}}, offsets relative to the byte after the header), then the data.
 *
 * <p>Opening validates the whole header before anything is used: the length lies within the
 * file, every dtype is BF16, F16 or F32, every tensor's shape times its dtype size equals its
 * offset range, every range lies within the data section, and no two ranges overlap. Each error
 * names the file and the tensor.
 *
 * <p>Mapping: a Java buffer holds at most 2 GiB - 1 bytes, so the data section is mapped in
 * windows of at most that size, each holding whole tensors (one tensor never spans two
 * windows); a tensor larger than a window is refused. The file channel is closed once mapped:
 * mappings outlive it. {@link #close()} only drops this object's references; the operating
 * system mapping goes when the garbage collector frees the last {@link TensorView} into it (Java
 * 17 has no explicit unmap), which also means a view handed out earlier stays valid.
 */
public final class SafetensorsFile implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(SafetensorsFile.class);

  /** Largest header accepted; the safetensors library has the same limit. */
  public static final long MAX_HEADER_BYTES = 100_000_000L;

  /** Largest window of one mapping (and so the largest tensor): a Java buffer's limit. */
  static final long MAX_MAPPING_BYTES = Integer.MAX_VALUE;

  private static final String METADATA_KEY = "__metadata__";

  private final Path path;
  private final Map<String, String> metadata;
  private final int mappingCount;
  private volatile Map<String, TensorView> tensors; // in file order; null once closed

  private SafetensorsFile(Path path, Map<String, TensorView> tensors, Map<String, String> metadata,
      int mappingCount) {
    this.path = path;
    this.tensors = tensors;
    this.metadata = metadata;
    this.mappingCount = mappingCount;
  }

  /**
   * Maps and validates a safetensors file.
   *
   * @throws CheckpointException when the file is missing, truncated or malformed (naming the file,
   *     and the tensor where one is at fault)
   * @throws IOException when reading or mapping fails
   */
  public static SafetensorsFile open(Path path) throws IOException {
    return open(path, MAX_MAPPING_BYTES);
  }

  /** {@link #open(Path)} with a smaller window, so tests can exercise several mappings. */
  static SafetensorsFile open(Path path, long maxMappingBytes) throws IOException {
    FileChannel channel;
    try {
      channel = FileChannel.open(path, StandardOpenOption.READ);
    } catch (NoSuchFileException e) {
      throw new CheckpointException(path + ": no such file", e);
    }
    try (channel) {
      long fileSize = channel.size();
      long headerBytes = readHeaderLength(path, channel, fileSize);
      JsonNode header = readHeader(path, channel, headerBytes);
      long dataStart = 8 + headerBytes;
      long dataBytes = fileSize - dataStart;
      Map<String, String> metadata = new LinkedHashMap<>();
      List<Entry> entries = parseEntries(path, header, dataBytes, metadata);
      checkOverlaps(path, entries);
      Map<String, TensorView> views = new LinkedHashMap<>();
      int mappings = map(path, channel, dataStart, entries, maxMappingBytes, views);
      LOG.debug("mapped {}: {} tensors, {} data bytes, {} mapping(s)", path, views.size(), dataBytes, mappings);
      return new SafetensorsFile(path, Collections.unmodifiableMap(views), Collections.unmodifiableMap(metadata),
          mappings);
    }
  }

  private static long readHeaderLength(Path path, FileChannel channel, long fileSize) throws IOException {
    if (fileSize < 8) {
      throw new CheckpointException(path + ": truncated: the file is " + fileSize + " bytes, shorter than the"
          + " 8-byte header length that starts a safetensors file");
    }
    ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    readFully(channel, len, 0);
    long headerBytes = len.getLong(0); // unsigned in the format: negative here means >= 2^63
    if (headerBytes < 0 || headerBytes > fileSize - 8) {
      throw new CheckpointException(path + ": header length " + Long.toUnsignedString(headerBytes)
          + " runs past the end of the file (" + fileSize + " bytes): truncated, or not a safetensors file");
    }
    if (headerBytes > MAX_HEADER_BYTES) {
      throw new CheckpointException(path + ": header length " + headerBytes + " exceeds the "
          + MAX_HEADER_BYTES + "-byte limit of the safetensors format");
    }
    if (headerBytes < 2) {
      throw new CheckpointException(path + ": header length " + headerBytes + " is too short for a JSON object");
    }
    return headerBytes;
  }

  private static JsonNode readHeader(Path path, FileChannel channel, long headerBytes) throws IOException {
    ByteBuffer raw = ByteBuffer.allocate((int) headerBytes);
    readFully(channel, raw, 8);
    raw.flip();
    CharBuffer text;
    try {
      text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(raw);
    } catch (CharacterCodingException e) {
      throw new CheckpointException(path + ": the header is not UTF-8 text: not a safetensors file", e);
    }
    JsonNode header;
    try {
      header = ModelConfig.strictMapper().readTree(text.toString());
    } catch (JsonProcessingException e) {
      throw new CheckpointException(path + ": the header is not valid JSON: " + e.getOriginalMessage(), e);
    }
    if (header == null || !header.isObject()) {
      throw new CheckpointException(path + ": the header must be a JSON object");
    }
    return header;
  }

  private static void readFully(FileChannel channel, ByteBuffer dst, long position) throws IOException {
    long at = position;
    while (dst.hasRemaining()) {
      int n = channel.read(dst, at);
      if (n < 0) {
        throw new CheckpointException("unexpected end of file at byte " + at);
      }
      at += n;
    }
  }

  /** A header entry, validated; offsets are relative to the data section. */
  private record Entry(String name, TensorDType dtype, long[] shape, long begin, long end) {
    long size() {
      return end - begin;
    }

    String range() {
      return "[" + begin + ", " + end + ")";
    }
  }

  private static List<Entry> parseEntries(Path path, JsonNode header, long dataBytes,
      Map<String, String> metadata) {
    List<Entry> entries = new ArrayList<>();
    for (Map.Entry<String, JsonNode> field : header.properties()) {
      String name = field.getKey();
      JsonNode value = field.getValue();
      if (METADATA_KEY.equals(name)) {
        // Free-form string pairs ({"format": "pt"}); nothing in them changes how we read tensors.
        if (value.isObject()) {
          value.properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
        }
        continue;
      }
      entries.add(parseEntry(path, name, value, dataBytes));
    }
    return entries;
  }

  private static Entry parseEntry(Path path, String name, JsonNode value, long dataBytes) {
    String where = path + ": tensor \"" + name + "\": ";
    if (!value.isObject()) {
      throw new CheckpointException(where + "expected an object with dtype, shape and data_offsets, found "
          + ConfigFields.describe(value));
    }
    JsonNode dtypeNode = value.get("dtype");
    if (dtypeNode == null || !dtypeNode.isTextual()) {
      throw new CheckpointException(where + "missing or non-string \"dtype\"");
    }
    TensorDType dtype = TensorDType.fromSafetensors(dtypeNode.textValue());
    if (dtype == null) {
      throw new CheckpointException(where + "dtype " + dtypeNode.textValue() + " is not supported; supported: "
          + TensorDType.supportedSafetensorsNames());
    }
    long[] shape = longArray(where, "shape", value.get("shape"), -1);
    long[] offsets = longArray(where, "data_offsets", value.get("data_offsets"), 2);
    long begin = offsets[0];
    long end = offsets[1];
    if (begin > end) {
      throw new CheckpointException(where + "data_offsets [" + begin + ", " + end + "] end before they begin");
    }
    long elements = 1;
    long bytes;
    try {
      for (long d : shape) {
        elements = Math.multiplyExact(elements, d);
      }
      bytes = Math.multiplyExact(elements, dtype.byteSize());
    } catch (ArithmeticException e) {
      throw new CheckpointException(where + "shape " + Arrays.toString(shape) + " overflows a 64-bit byte count", e);
    }
    if (bytes != end - begin) {
      throw new CheckpointException(where + "shape " + Arrays.toString(shape) + " of " + dtype.safetensorsName()
          + " needs " + bytes + " bytes but data_offsets [" + begin + ", " + end + "] hold " + (end - begin));
    }
    if (end > dataBytes) {
      throw new CheckpointException(where + "data_offsets [" + begin + ", " + end + "] run past the end of the"
          + " data section (" + dataBytes + " bytes after the header): the file is truncated or the header is wrong");
    }
    return new Entry(name, dtype, shape, begin, end);
  }

  /** A JSON array of non-negative integers; {@code length} -1 accepts any length. */
  private static long[] longArray(String where, String field, JsonNode node, int length) {
    if (node == null || !node.isArray() || (length >= 0 && node.size() != length)) {
      throw new CheckpointException(where + "\"" + field + "\" must be an array of "
          + (length >= 0 ? length + " " : "") + "non-negative integers; found "
          + (node == null ? "nothing" : ConfigFields.describe(node)));
    }
    long[] out = new long[node.size()];
    for (int i = 0; i < out.length; i++) {
      JsonNode v = node.get(i);
      if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
        throw new CheckpointException(where + "\"" + field + "\" must hold non-negative integers; found "
            + ConfigFields.describe(node));
      }
      out[i] = v.longValue();
    }
    return out;
  }

  /** Two tensors sharing a byte would alias; refuse. Empty tensors own no bytes and never overlap. */
  private static void checkOverlaps(Path path, List<Entry> entries) {
    entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    Entry last = null;
    for (Entry e : entries) {
      if (e.size() == 0) {
        continue;
      }
      if (last != null && e.begin() < last.end()) {
        throw new CheckpointException(path + ": tensors \"" + last.name() + "\" " + last.range() + " and \""
            + e.name() + "\" " + e.range() + " overlap in the data section");
      }
      last = e;
    }
  }

  /**
   * Maps the data in windows of at most {@code maxWindow} bytes, each holding whole tensors
   * (entries are sorted by offset), and slices a view per tensor. Returns the window count.
   */
  private static int map(Path path, FileChannel channel, long dataStart, List<Entry> entries, long maxWindow,
      Map<String, TensorView> views) throws IOException {
    int windows = 0;
    int i = 0;
    while (i < entries.size()) {
      Entry first = entries.get(i);
      if (first.size() > maxWindow) {
        throw new CheckpointException(path + ": tensor \"" + first.name() + "\" is " + first.size()
            + " bytes; a single mapped tensor can hold at most " + maxWindow + " bytes");
      }
      long windowBegin = first.begin();
      long windowEnd = first.end();
      int j = i + 1;
      while (j < entries.size() && entries.get(j).end() - windowBegin <= maxWindow) {
        windowEnd = Math.max(windowEnd, entries.get(j).end());
        j++;
      }
      MappedByteBuffer window = channel.map(FileChannel.MapMode.READ_ONLY, dataStart + windowBegin,
          windowEnd - windowBegin);
      windows++;
      for (int k = i; k < j; k++) {
        Entry e = entries.get(k);
        ByteBuffer slice = window.slice((int) (e.begin() - windowBegin), (int) e.size());
        views.put(e.name(), new TensorView(path, e.name(), e.dtype(), e.shape(), dataStart + e.begin(), slice));
      }
      i = j;
    }
    return windows;
  }

  /** The file. */
  public Path path() {
    return path;
  }

  /** Tensor names in file order. */
  public Collection<String> names() {
    return open().keySet();
  }

  /** Every tensor, in file order. */
  public Collection<TensorView> tensors() {
    return open().values();
  }

  public boolean contains(String name) {
    return open().containsKey(name);
  }

  /**
   * The tensor called {@code name}.
   *
   * @throws CheckpointException when the file has no such tensor
   */
  public TensorView tensor(String name) {
    TensorView view = open().get(name);
    if (view == null) {
      throw new CheckpointException(path + ": no tensor named \"" + name + "\"");
    }
    return view;
  }

  /** The header's {@code __metadata__} string pairs (empty when absent). */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** How many memory mappings hold the data (1 for files under 2 GiB). */
  public int mappingCount() {
    return mappingCount;
  }

  /**
   * Drops this object's references to the mappings; later lookups throw. Views already handed
   * out stay valid (see the class comment).
   */
  @Override
  public void close() {
    tensors = null;
  }

  private Map<String, TensorView> open() {
    Map<String, TensorView> t = tensors;
    if (t == null) {
      throw new IllegalStateException(path + " is closed");
    }
    return t;
  }
}
