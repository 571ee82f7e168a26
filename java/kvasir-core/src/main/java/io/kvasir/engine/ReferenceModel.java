package io.kvasir.engine;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code kvasir-ref}: the project's trained reference model, shipped in the repository as
 * {@code models/kvasir-ref} (a Hugging Face directory, about 9 MB) and the default model of the
 * CLI, so the README's main command runs with no download.
 *
 * <p>Found, in this order, under {@code -Dkvasir.models} or {@code $KVASIR_MODELS} (a folder
 * holding {@code kvasir-ref/}), then in {@code models/} of the checkout this class was loaded
 * from (walking up from its jar or classes folder), then of the working directory and its parents.
 */
public final class ReferenceModel {
  /** The name that selects the reference model where a model directory is expected. */
  public static final String NAME = "kvasir-ref";

  private ReferenceModel() {}

  public static boolean isReference(String model) {
    return NAME.equals(model);
  }

  /**
   * The reference model's directory.
   *
   * @throws IllegalArgumentException naming every place searched when none holds it
   */
  public static Path resolve() {
    Set<Path> searched = new LinkedHashSet<>();
    for (Path root : roots()) {
      Path dir = root.resolve(NAME).toAbsolutePath().normalize();
      if (!searched.add(dir)) {
        continue;
      }
      if (Files.isRegularFile(dir.resolve("config.json"))) {
        return dir;
      }
    }
    throw new IllegalArgumentException("the reference model " + NAME + " was not found (searched " + searched
        + "); set -Dkvasir.models=DIR (a folder holding " + NAME + "/) or pass a model directory");
  }

  private static List<Path> roots() {
    List<Path> roots = new ArrayList<>();
    String configured = System.getProperty("kvasir.models", System.getenv("KVASIR_MODELS"));
    if (configured != null && !configured.isEmpty()) {
      roots.add(Path.of(configured));
    }
    try {
      var source = ReferenceModel.class.getProtectionDomain().getCodeSource();
      if (source != null) {
        for (Path p = Path.of(source.getLocation().toURI()).toAbsolutePath(); p != null; p = p.getParent()) {
          roots.add(p.resolve("models"));
        }
      }
    } catch (URISyntaxException | SecurityException | IllegalArgumentException e) {
      // An unusual class loader: the working directory below still applies.
    }
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      roots.add(p.resolve("models"));
    }
    return roots;
  }
}
