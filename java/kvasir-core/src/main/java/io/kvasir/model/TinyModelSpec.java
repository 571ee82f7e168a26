package io.kvasir.model;

/**
 * What {@link TinyCheckpoints} writes: an architecture, its shapes and options, the file dtype,
 * the number of shards and the seed of the random weights.
 *
 * <p>Defaults (see {@link Builder}) are small enough to run anywhere in milliseconds yet
 * exercise what real models do: 12 query heads over 4 key/value heads (GQA with an odd group
 * count), head_dim 64 with hidden 192 (so q_proj is 768 x 192, not square, and head_dim is
 * independent of hidden / heads = 16; transformers 5 only insists that hidden be a multiple of
 * the head count), and for Llama the llama3 RoPE scaling with an original context of 1024, so
 * the low-, medium- and high-frequency bands of the scaling all occur at head_dim 64.
 *
 * @param architecture      model_type
 * @param vocabSize         vocab_size
 * @param hiddenSize        hidden_size
 * @param intermediateSize  intermediate_size
 * @param numLayers         num_hidden_layers
 * @param numHeads          num_attention_heads
 * @param numKvHeads        num_key_value_heads
 * @param headDim           head_dim (always written explicitly)
 * @param dtype             element type of every tensor in the files
 * @param shards            1 writes model.safetensors; more writes that many shards and an index
 * @param seed              the weights are a function of the seed and the tensor name only
 * @param tieWordEmbeddings no lm_head.weight; the LM head is the embedding matrix
 * @param ropeTheta         rope_theta
 * @param ropeScaling       llama3 scaling or null
 * @param maxPositionEmbeddings max_position_embeddings
 * @param rmsNormEps        rms_norm_eps
 * @param bosTokenId        bos_token_id (config.json and generation_config.json)
 * @param eosTokenId        eos_token_id (config.json and generation_config.json)
 */
public record TinyModelSpec(Architecture architecture, int vocabSize, int hiddenSize, int intermediateSize,
    int numLayers, int numHeads, int numKvHeads, int headDim, TensorDType dtype, int shards, long seed,
    boolean tieWordEmbeddings, double ropeTheta, RopeScaling ropeScaling, int maxPositionEmbeddings,
    double rmsNormEps, int bosTokenId, int eosTokenId) {

  public TinyModelSpec {
    if (dtype == null) {
      throw new IllegalArgumentException("dtype is required");
    }
    if (shards < 1) {
      throw new IllegalArgumentException("shards must be at least 1; found " + shards);
    }
    // transformers 5 refuses such configs ("hidden size is not a multiple of the number of
    // attention heads") even when head_dim is explicit; what we write must load there too.
    if (numHeads > 0 && hiddenSize % numHeads != 0) {
      throw new IllegalArgumentException("hidden_size " + hiddenSize + " must be a multiple of num_attention_heads "
          + numHeads + " for transformers to load the checkpoint");
    }
    checkToken("bos", bosTokenId, vocabSize);
    checkToken("eos", eosTokenId, vocabSize);
    toConfig(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim,
        dtype, tieWordEmbeddings, ropeTheta, ropeScaling, maxPositionEmbeddings, rmsNormEps); // validates shapes
  }

  private static void checkToken(String what, int id, int vocabSize) {
    if (id < 0 || id >= vocabSize) {
      throw new IllegalArgumentException(what + "_token_id " + id + " is outside the vocabulary [0, " + vocabSize
          + ")");
    }
  }

  /** The config this spec's config.json describes. */
  public ModelConfig toConfig() {
    return toConfig(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim,
        dtype, tieWordEmbeddings, ropeTheta, ropeScaling, maxPositionEmbeddings, rmsNormEps);
  }

  private static ModelConfig toConfig(Architecture architecture, int vocabSize, int hiddenSize,
      int intermediateSize, int numLayers, int numHeads, int numKvHeads, int headDim, TensorDType dtype,
      boolean tieWordEmbeddings, double ropeTheta, RopeScaling ropeScaling, int maxPositionEmbeddings,
      double rmsNormEps) {
    return new ModelConfig(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
        headDim, rmsNormEps, ropeTheta, ropeScaling, maxPositionEmbeddings, tieWordEmbeddings, dtype);
  }

  /** A builder with the defaults of the class comment for {@code architecture}. */
  public static Builder builder(Architecture architecture) {
    return new Builder(architecture);
  }

  /** The defaults for {@code architecture}, unchanged. */
  public static TinyModelSpec defaults(Architecture architecture) {
    return builder(architecture).build();
  }

  /** A copy with another dtype (used to write the same weights in several precisions). */
  public TinyModelSpec withDtype(TensorDType newDtype) {
    return new TinyModelSpec(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
        headDim, newDtype, shards, seed, tieWordEmbeddings, ropeTheta, ropeScaling, maxPositionEmbeddings,
        rmsNormEps, bosTokenId, eosTokenId);
  }

  /** A copy written as {@code newShards} files. */
  public TinyModelSpec withShards(int newShards) {
    return new TinyModelSpec(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
        headDim, dtype, newShards, seed, tieWordEmbeddings, ropeTheta, ropeScaling, maxPositionEmbeddings,
        rmsNormEps, bosTokenId, eosTokenId);
  }

  /**
   * Optional settings over per-architecture defaults, in the style of the project's other
   * builders ({@code opt*} for optional fields; the architecture is the one required field).
   * Real models' habits are followed where they differ: Qwen3 ties its embeddings (as the small
   * Qwen3 models do), Llama uses rope_theta 500000 with llama3 scaling and rms_norm_eps 1e-5, the
   * others rope_theta 1000000 and 1e-6.
   */
  public static final class Builder {
    private final Architecture architecture;
    private int vocabSize = 512;
    private int hiddenSize = 192;
    private int intermediateSize = 384;
    private int numLayers = 2;
    private int numHeads = 12;
    private int numKvHeads = 4;
    private int headDim = 64;
    private TensorDType dtype = TensorDType.BF16;
    private int shards = 1;
    private long seed = 1;
    private boolean tieWordEmbeddings;
    private double ropeTheta;
    private RopeScaling ropeScaling;
    private int maxPositionEmbeddings = 4096;
    private double rmsNormEps;
    private int bosTokenId = 1;
    private int eosTokenId = 2;

    private Builder(Architecture architecture) {
      if (architecture == null) {
        throw new IllegalArgumentException("architecture is required");
      }
      this.architecture = architecture;
      this.tieWordEmbeddings = architecture == Architecture.QWEN3;
      boolean llama = architecture == Architecture.LLAMA;
      this.ropeTheta = llama ? 500000.0 : 1000000.0;
      this.ropeScaling = llama ? new RopeScaling(8.0, 1.0, 4.0, 1024) : null;
      this.rmsNormEps = llama ? 1e-5 : 1e-6;
    }

    public Builder optVocabSize(int v) {
      vocabSize = v;
      return this;
    }

    public Builder optHiddenSize(int v) {
      hiddenSize = v;
      return this;
    }

    public Builder optIntermediateSize(int v) {
      intermediateSize = v;
      return this;
    }

    public Builder optNumLayers(int v) {
      numLayers = v;
      return this;
    }

    /** Query and key/value heads. */
    public Builder optHeads(int heads, int kvHeads) {
      numHeads = heads;
      numKvHeads = kvHeads;
      return this;
    }

    public Builder optHeadDim(int v) {
      headDim = v;
      return this;
    }

    public Builder optDtype(TensorDType v) {
      dtype = v;
      return this;
    }

    public Builder optShards(int v) {
      shards = v;
      return this;
    }

    public Builder optSeed(long v) {
      seed = v;
      return this;
    }

    public Builder optTieWordEmbeddings(boolean v) {
      tieWordEmbeddings = v;
      return this;
    }

    public Builder optRopeTheta(double v) {
      ropeTheta = v;
      return this;
    }

    /** llama3 scaling, or null for plain RoPE. */
    public Builder optRopeScaling(RopeScaling v) {
      ropeScaling = v;
      return this;
    }

    public Builder optMaxPositionEmbeddings(int v) {
      maxPositionEmbeddings = v;
      return this;
    }

    public Builder optRmsNormEps(double v) {
      rmsNormEps = v;
      return this;
    }

    public Builder optBosTokenId(int v) {
      bosTokenId = v;
      return this;
    }

    public Builder optEosTokenId(int v) {
      eosTokenId = v;
      return this;
    }

    /**
     * @throws CheckpointException or IllegalArgumentException for inconsistent settings (heads
     *     not a multiple of kv heads, odd head_dim, token ids outside the vocabulary, ...)
     */
    public TinyModelSpec build() {
      return new TinyModelSpec(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads,
          numKvHeads, headDim, dtype, shards, seed, tieWordEmbeddings, ropeTheta, ropeScaling, maxPositionEmbeddings,
          rmsNormEps, bosTokenId, eosTokenId);
    }
  }
}
