package io.kvasir.cli;

import picocli.CommandLine.IVersionProvider;

/** {@code kvasir --version}: the Java artifacts' version, without loading the native library. */
final class VersionProvider implements IVersionProvider {
  @Override
  public String[] getVersion() {
    String version = KvasirCli.class.getPackage().getImplementationVersion();
    return new String[] {"kvasir " + (version == null ? "(development build)" : version)};
  }
}
