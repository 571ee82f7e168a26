package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvasir.bench.tasks.TaskScorer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Exact-match scoring on hand-written outputs. */
class TaskScorerTest {
  private static boolean ok(String task, List<String> values, String output) {
    return TaskScorer.correct(task, values, output);
  }

  @Test
  void valuesMustAppearAsWholeTokens() {
    List<String> v = List.of("68219");
    assertTrue(ok("passkey", v, "The pass key is 68219."));
    assertTrue(ok("passkey", v, "68219"));
    assertTrue(ok("passkey", v, "key: (68219)\n"));
    assertFalse(ok("passkey", v, "The pass key is 68218."));
    assertFalse(ok("passkey", v, "The pass key is 168219."), "inside a longer number");
    assertFalse(ok("passkey", v, "The pass key is 682190."), "inside a longer number");
    assertFalse(ok("passkey", v, "code x68219"), "glued to a letter");
    assertFalse(ok("passkey", v, ""));
    assertFalse(ok("passkey", v, null));
    assertTrue(ok("kv_retrieval", List.of("3f1cd4fb"), "\"3f1cd4fb\""));
    assertFalse(ok("kv_retrieval", List.of("3f1cd4fb"), "3f1cd4fba"));
  }

  @Test
  void outputIsCutAtTheFirstEndMarker() {
    List<String> v = List.of("1234567");
    assertTrue(ok("niah_single", v, "It is 1234567.<|end|>"));
    assertFalse(ok("niah_single", v, "It is 7654321.<|end|> 1234567"));
    assertFalse(ok("niah_single", v, "No.<|endoftext|>The number is 1234567."));
    assertFalse(ok("niah_single", v, "a<|endoftext|>b<|end|>1234567"));
  }

  @Test
  void multiValueTasksNeedEveryValueAndScorePartially() {
    List<String> v = List.of("MLJZQ", "CGXIU", "FKRTG", "EWYUM");
    assertTrue(ok("variable_tracking", v, "MLJZQ, CGXIU, FKRTG, EWYUM."));
    TaskScorer.Score half = TaskScorer.score("variable_tracking", v, "MLJZQ and CGXIU and XFKRTG");
    assertFalse(half.correct());
    assertEquals(0.5, half.partial(), 1e-12);
    assertEquals(1.0, TaskScorer.score("niah_multivalue", List.of("1", "2"), "1 2").partial(), 1e-12);
  }

  @Test
  void arithmeticTakesTheLastStatedAnswer() {
    List<String> v = List.of("1930");
    assertTrue(ok("arithmetic", v, "First, 640 + 721 = 1361. ... The answer is 1930."));
    assertTrue(ok("arithmetic", v, "The answer is 12. No wait, the answer is 1930"));
    assertFalse(ok("arithmetic", v, "The answer is 1930. Hmm, the answer is 1931."), "the last one counts");
    assertFalse(ok("arithmetic", v, "1930"), "a bare number is not a stated answer");
    assertFalse(ok("arithmetic", v, "The answer is 19300."));
    assertTrue(ok("arithmetic", v, "The answer is 1930.<|end|> The answer is 7."), "what follows the end is cut");
    assertTrue(ok("arithmetic", List.of("-5"), "the answer is -5"));
  }

  @Test
  void cweWantsExactlyTheSetOfCommonWords() {
    List<String> v = List.of("banoki", "temoru", "zisala");
    assertTrue(ok("cwe", v, "The 3 most common words in the list are: banoki, temoru, zisala."));
    assertTrue(ok("cwe", v, "zisala\n1. Banoki 2. temoru zisala"), "any order, case or repetition");
    assertTrue(ok("cwe", v, "banoki temoru zisala<|end|> pelodu"), "cut at the end marker");
    TaskScorer.Score extra = TaskScorer.score("cwe", v, "banoki, temoru, zisala, pelodu");
    assertFalse(extra.correct(), "a further list word is wrong");
    assertEquals(1.0, extra.partial(), 1e-12);
    TaskScorer.Score two = TaskScorer.score("cwe", v, "The words are: banoki and temoru.");
    assertFalse(two.correct());
    assertEquals(2 / 3.0, two.partial(), 1e-12);
    assertFalse(ok("cwe", v, "banokis temoru zisala"), "a word inside a longer run does not count");
    assertFalse(ok("cwe", v, ""));
  }

  /** The cases tools/peers/hf_eval_tasks.py --self-test runs on its Python port of the scorer. */
  @Test
  void sharedCasesAgreeWithThePythonPort() throws Exception {
    Path file = null;
    for (Path p = Path.of("").toAbsolutePath(); p != null && file == null; p = p.getParent()) {
      Path f = p.resolve("tools/peers/task_scorer_cases.json");
      file = Files.isRegularFile(f) ? f : null;
    }
    assertTrue(file != null, "tools/peers/task_scorer_cases.json above " + Path.of("").toAbsolutePath());
    JsonNode cases = new ObjectMapper().readTree(file.toFile()).get("cases");
    assertTrue(cases.size() >= 30, "cases: " + cases.size());
    for (JsonNode c : cases) {
      List<String> values = new ArrayList<>();
      c.get("values").forEach(v -> values.add(v.asText()));
      TaskScorer.Score s = TaskScorer.score(c.get("task").asText(), values, c.get("output").asText());
      String what = c.get("task").asText() + " " + values + " on " + c.get("output");
      assertEquals(c.get("correct").asBoolean(), s.correct(), what);
      assertEquals(c.get("partial").asDouble(), s.partial(), 1e-12, what);
    }
  }
}
