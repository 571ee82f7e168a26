package io.kvasir.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvasir.bench.tasks.ApproxTokenCounter;
import io.kvasir.bench.tasks.Haystack;
import io.kvasir.bench.tasks.Task;
import io.kvasir.bench.tasks.TaskGenerator;
import io.kvasir.bench.tasks.TaskRecord;
import io.kvasir.bench.tasks.TaskScorer;
import io.kvasir.bench.tasks.TokenCounter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The records of every task: determinism, where the facts are, the budget, and the errors. */
class TaskGeneratorTest {
  @TempDir
  static Path tmp;

  static Haystack haystack;
  static TaskGenerator approx;

  @BeforeAll
  static void writeHaystack() {
    haystack = Haystack.load(BenchFixtures.haystack(tmp));
    approx = new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, null);
  }

  private static int occurrences(String text, String part) {
    int n = 0;
    for (int at = text.indexOf(part); at >= 0; at = text.indexOf(part, at + 1)) ++n;
    return n;
  }

  @Test
  void theSameSeedGivesTheSameRecordAndAnotherSeedAnother() {
    for (Task task : Task.values()) {
      String a = approx.generate(task, 11, 1500).toJson();
      String b = new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, null).generate(task, 11, 1500).toJson();
      assertEquals(a, b, task.id());
      assertNotEquals(a, approx.generate(task, 12, 1500).toJson(), task.id());
      TaskRecord r = TaskRecord.fromJson(a);
      assertEquals(task.id() + "-11", r.id());
      assertEquals(a, r.toJson(), "a record reads back to the same JSON");
    }
  }

  @Test
  void jsonFieldsComeInSchemaOrderAndNullsAreLeftOut() {
    String passkey = approx.generate(Task.PASSKEY, 3, 600).toJson();
    List<String> order = List.of("\"id\"", "\"task\"", "\"seed\"", "\"length\"", "\"prompt_tokens\"", "\"depth\"",
        "\"prompt\"", "\"answer\"", "\"values\"");
    int last = -1;
    for (String field : order) {
      int at = passkey.indexOf(field + ":");
      assertTrue(at > last, field + " out of order in " + passkey);
      last = at;
    }
    assertTrue(!passkey.contains("\"parts\""), passkey);
    String kv = approx.generate(Task.KV_RETRIEVAL, 3, 600).toJson();
    assertTrue(!kv.contains("\"depth\"") && !kv.contains("\"parts\""), kv);
    assertTrue(approx.generate(Task.DOCQA, 3, 2000).toJson().contains("\"parts\":[{\"text\":"));
  }

  @Test
  void passkeyNeedleIsThereOnceWithItsKeyTwice() {
    for (long seed = 0; seed < 20; ++seed) {
      TaskRecord r = approx.generate(Task.PASSKEY, seed, 800);
      String k = r.values().get(0);
      assertTrue(k.matches("[1-9][0-9]{4}"), k);
      assertEquals(1, occurrences(r.prompt(), "The pass key is " + k + ". Remember it. " + k + " is the pass key."));
      assertEquals(2, occurrences(r.prompt(), k), r.prompt());
      assertEquals("The pass key is " + k + ".", r.answer());
      assertTrue(r.prompt().startsWith("There is an important pass key hidden inside a lot of irrelevant text."
          + " Find it and memorize it.\n\n"));
      assertTrue(r.prompt().endsWith("\n\nWhat is the pass key?"));
    }
  }

  @Test
  void niahSingleAndMultikeyAskForANeedleThatIsThereOnce() {
    Pattern needle = Pattern.compile("One of the special magic numbers for ([a-z]+-[a-z]+) is: ([0-9]+)\\.");
    for (long seed = 0; seed < 20; ++seed) {
      TaskRecord single = approx.generate(Task.NIAH_SINGLE, seed, 900);
      assertEquals(1, occurrences(single.prompt(), "One of the special magic numbers"));
      assertTrue(single.values().get(0).matches("[1-9][0-9]{6}"));

      TaskRecord multi = approx.generate(Task.NIAH_MULTIKEY, seed, 900);
      Matcher m = needle.matcher(multi.prompt());
      List<String> keys = new ArrayList<>();
      List<String> values = new ArrayList<>();
      while (m.find()) {
        keys.add(m.group(1));
        values.add(m.group(2));
      }
      assertEquals(4, keys.size(), multi.prompt());
      assertEquals(4, new HashSet<>(keys).size(), "distinct keys: " + keys);
      assertEquals(4, new HashSet<>(values).size(), "distinct values: " + values);
      Matcher q = Pattern.compile("What is the special magic number for ([a-z]+-[a-z]+) mentioned in the text\\?$")
          .matcher(multi.prompt());
      assertTrue(q.find(), multi.prompt());
      String asked = q.group(1);
      String value = values.get(keys.indexOf(asked));
      assertEquals(1, occurrences(multi.prompt(), "One of the special magic numbers for " + asked + " is: " + value + "."));
      assertEquals(List.of(value), multi.values());
      assertEquals("The special magic number for " + asked + " is: " + value + ".", multi.answer());
      assertNull(multi.depth());
    }
  }

  @Test
  void multiqueryAsksEveryKeyAndAnswersEachWithItsOwnNeedle() {
    Pattern needle = Pattern.compile("One of the special magic numbers for ([a-z]+-[a-z]+) is: ([0-9]+)\\.");
    for (long seed = 0; seed < 20; ++seed) {
      TaskRecord r = approx.generate(Task.NIAH_MULTIQUERY, seed, 1200);
      Map<String, String> byKey = new HashMap<>();
      Matcher m = needle.matcher(r.prompt());
      while (m.find()) {
        assertNull(byKey.put(m.group(1), m.group(2)), "each key once: " + m.group(1));
      }
      assertEquals(6, byKey.size(), r.prompt());
      assertEquals(6, new HashSet<>(byKey.values()).size(), "distinct values");
      Matcher q = Pattern.compile("What are the special magic numbers for (.+) mentioned in the text\\?$").matcher(r.prompt());
      assertTrue(q.find());
      List<String> asked = List.of(q.group(1).replace(" and ", ", ").split(", "));
      assertEquals(byKey.keySet(), new HashSet<>(asked), "every key asked once");
      StringBuilder expected = new StringBuilder();
      List<String> values = new ArrayList<>();
      for (String k : asked) {
        expected.append(expected.length() == 0 ? "" : " ").append("The special magic number for ").append(k)
            .append(" is: ").append(byKey.get(k)).append('.');
        values.add(byKey.get(k));
      }
      assertEquals(expected.toString(), r.answer(), "one sentence per key, in the question's order");
      assertEquals(values, r.values());
      assertTrue(TaskScorer.score(r, r.answer()).correct());
    }
  }

  @Test
  void multivalueListsItsValuesInOrderOfAppearance() {
    for (long seed = 0; seed < 20; ++seed) {
      TaskRecord r = approx.generate(Task.NIAH_MULTIVALUE, seed, 900);
      assertEquals(4, r.values().size());
      assertEquals(4, new HashSet<>(r.values()).size());
      int last = -1;
      for (String v : r.values()) {
        int at = r.prompt().indexOf(v);
        assertTrue(at > last, "values in order of appearance: " + r.values());
        assertEquals(1, occurrences(r.prompt(), v));
        last = at;
      }
      String key = r.answer().substring("The special magic numbers for ".length(), r.answer().indexOf(" are: "));
      assertEquals(4, occurrences(r.prompt(), "One of the special magic numbers for " + key + " is: "));
      assertEquals("The special magic numbers for " + key + " are: " + String.join(", ", r.values()) + ".", r.answer());
    }
  }

  @Test
  void variableTrackingChainsInOrder() {
    for (long seed = 0; seed < 20; ++seed) {
      TaskRecord r = approx.generate(Task.VARIABLE_TRACKING, seed, 900);
      List<String> v = r.values();
      assertEquals(5, v.size());
      assertEquals(5, new HashSet<>(v).size());
      String n = r.prompt().substring(r.prompt().lastIndexOf("assigned the value ") + 19).split(" ")[0];
      assertTrue(n.matches("[1-9][0-9]{4}"), n);
      int at = r.prompt().indexOf("VAR " + v.get(0) + " = " + n + ".");
      assertTrue(at >= 0, r.prompt());
      for (int i = 1; i < 5; ++i) {
        int next = r.prompt().indexOf("VAR " + v.get(i) + " = VAR " + v.get(i - 1) + ".");
        assertTrue(next > at, "statement " + i + " after the one before");
        at = next;
      }
      assertEquals("The variables assigned the value " + n + " are: " + String.join(", ", v) + ".", r.answer());
    }
  }

  @Test
  void kvRetrievalAsksForOneOfItsDistinctKeys() {
    Pattern pair = Pattern.compile("\"([0-9a-f]{8})\": \"([0-9a-f]{8})\"");
    for (long seed = 0; seed < 10; ++seed) {
      TaskRecord r = approx.generate(Task.KV_RETRIEVAL, seed, 700);
      String object = r.prompt().substring(r.prompt().indexOf('{'), r.prompt().indexOf('}') + 1);
      Matcher m = pair.matcher(object);
      List<String> keys = new ArrayList<>();
      List<String> values = new ArrayList<>();
      while (m.find()) {
        keys.add(m.group(1));
        values.add(m.group(2));
      }
      assertTrue(keys.size() > 10, object);
      assertEquals(keys.size(), new HashSet<>(keys).size());
      Matcher q = Pattern.compile("\n\nKey: \"([0-9a-f]{8})\"\nThe value associated with the specified key is:$")
          .matcher(r.prompt());
      assertTrue(q.find(), r.prompt());
      assertEquals(values.get(keys.indexOf(q.group(1))), r.answer());
      assertEquals(List.of(r.answer()), r.values());
    }
  }

  @Test
  void docqaPartsRebuildThePromptAndHoldTheFactOnce() {
    for (long seed = 0; seed < 10; ++seed) {
      TaskRecord r = approx.generate(Task.DOCQA, seed, 400 + 300 * (int) seed);
      List<TaskRecord.Part> parts = r.parts();
      assertNotNull(parts);
      StringBuilder joined = new StringBuilder();
      for (TaskRecord.Part p : parts) joined.append(p.text());
      assertEquals(r.prompt(), joined.toString());
      int docs = parts.size() - 2;
      assertTrue(docs >= 2 && docs <= 64, "documents: " + docs);
      assertEquals(0, parts.get(0).block());
      assertEquals("Answer the question using the documents below.\n\n", parts.get(0).text());
      assertEquals(0, parts.get(parts.size() - 1).block());
      for (int i = 1; i <= docs; ++i) {
        assertEquals(i, parts.get(i).block());
        assertTrue(parts.get(i).text().startsWith("Document " + i + ": "), parts.get(i).text());
        assertTrue(parts.get(i).text().endsWith("\n\n"));
        assertEquals(1, occurrences(parts.get(i).text(), "The code of the "));
      }
      String question = parts.get(parts.size() - 1).text();
      String key = question.substring("Question: What is the code of the ".length(), question.indexOf(" archive?"));
      assertEquals("Question: What is the code of the " + key + " archive?", question);
      assertEquals(1, occurrences(r.prompt(), r.answer()), "the asked fact is in exactly one document");
      assertEquals("The code of the " + key + " archive is " + r.values().get(0) + ".", r.answer());
      assertTrue(r.values().get(0).matches("[1-9][0-9]{5}"));
    }
  }

  @Test
  void arithmeticTracesAreRightStepByStep() {
    Pattern step = Pattern.compile("(\\d+) ([+-]) (\\d+) = (\\d+)");
    for (long seed = 0; seed < 300; ++seed) {
      TaskRecord r = approx.generate(Task.ARITHMETIC, seed, 64);
      assertTrue(r.prompt().matches("Compute \\d+( [+-] \\d+){2,3}\\."), r.prompt());
      String[] tokens = r.prompt().substring(8, r.prompt().length() - 1).split(" ");
      int value = Integer.parseInt(tokens[0]);
      for (int i = 1; i < tokens.length; i += 2) {
        int operand = Integer.parseInt(tokens[i + 1]);
        assertTrue(operand >= 10 && operand <= 999, r.prompt());
        value = tokens[i].equals("+") ? value + operand : value - operand;
        assertTrue(value >= 0 && value <= 9999, "intermediate out of range: " + r.prompt());
      }
      Matcher m = step.matcher(r.answer());
      int checked = 0;
      while (m.find()) {
        int x = Integer.parseInt(m.group(1));
        int y = Integer.parseInt(m.group(3));
        int z = Integer.parseInt(m.group(4));
        assertEquals(m.group(2).equals("+") ? x + y : x - y, z, m.group() + " in " + r.answer());
        ++checked;
      }
      int ops = tokens.length / 2;
      assertEquals(3 * ops, checked, "a step, its check and its restatement per operation: " + r.answer());
      assertEquals(List.of(Integer.toString(value)), r.values());
      assertTrue(r.answer().startsWith("First, ") && r.answer().contains(" Finally, "), r.answer());
      assertEquals(ops == 3, r.answer().contains(" Next, "), r.answer());
      assertTrue(r.answer().endsWith(" The answer is " + value + "."), r.answer());
      assertTrue(r.promptTokens() <= 64);
    }
  }

  @Test
  void cweListsTheCommonWordsAsOftenAsDocumentedAndTheRestRarely() {
    Pattern entry = Pattern.compile("(\\d+)\\. ([a-z]+)");
    for (TokenCounter counter : List.of(ApproxTokenCounter.INSTANCE, BenchFixtures.qwen3())) {
      TaskGenerator g = new TaskGenerator(null, counter, null);  // no haystack needed
      for (int length : new int[] {600, 1500, 4095, 4096, 9000}) {
        for (long seed = 0; seed < 3; ++seed) {
          TaskRecord r = g.generate(Task.CWE, seed, length);
          String what = "cwe length " + length + " seed " + seed + " with " + counter;
          assertTrue(r.prompt().startsWith("Below is a numbered list of words. In these words, some appear more often"
              + " than others. Memorize the ones that appear most often.\n"), what);
          assertTrue(r.prompt().endsWith("\nQuestion: What are the 10 most common words in the above list?"), what);
          String list = r.prompt().substring(r.prompt().indexOf('\n') + 1, r.prompt().lastIndexOf('\n'));
          Map<String, Integer> counts = new HashMap<>();
          List<String> firstSeen = new ArrayList<>();
          Matcher m = entry.matcher(list);
          int n = 0;
          while (m.find()) {
            assertEquals(++n, Integer.parseInt(m.group(1)), what + ": numbered from 1 without gaps");
            assertTrue(m.group(2).matches("([bdfgklmnprstvz][aeiou]){3}"), m.group(2));
            if (counts.merge(m.group(2), 1, Integer::sum) == 1) firstSeen.add(m.group(2));
          }
          int common = length < 4096 ? 6 : 30;
          int rare = length < 4096 ? 1 : 3;
          assertEquals(10, r.values().size(), what);
          for (String v : r.values()) assertEquals(common, counts.get(v), what + ": " + v);
          long rareWords = counts.entrySet().stream().filter(e -> !r.values().contains(e.getKey())).count();
          assertTrue(rareWords >= 1, what);
          counts.forEach((w, c) -> assertTrue(r.values().contains(w) || c == rare, what + ": " + w + " x " + c));
          assertEquals(10 * common + rareWords * rare, n, what);
          // The values in order of first appearance, and the answer names exactly them.
          assertEquals(firstSeen.stream().filter(r.values()::contains).toList(), r.values(), what);
          assertEquals("The 10 most common words in the list are: " + String.join(", ", r.values()) + ".", r.answer());
          assertTrue(TaskScorer.score(r, r.answer()).correct(), what);
          // The budget: exact count, never over, and within a rare word's entries of it.
          int exact = counter.count(r.prompt());
          assertEquals(exact, r.promptTokens(), what);
          assertTrue(exact <= length, what + ": " + exact);
          int unit = rare * counter.count(" 12345. bakedo");
          assertTrue(exact >= length - unit - 16, what + ": only " + exact + " tokens");
        }
      }
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> approx.generate(Task.CWE, 1, 100));
    assertTrue(e.getMessage().contains("cwe") && e.getMessage().contains("minimum is"), e.getMessage());
  }

  @Test
  void singleNeedleDepthIsWhereTheNeedleIs() {
    for (Double fixed : Arrays.asList(null, 0.0, 0.25, 0.5, 1.0)) {
      TaskGenerator g = new TaskGenerator(haystack, ApproxTokenCounter.INSTANCE, fixed);
      for (long seed = 0; seed < 15; ++seed) {
        for (Task task : List.of(Task.PASSKEY, Task.NIAH_SINGLE)) {
          TaskRecord r = g.generate(task, seed, 1200);
          double depth = r.depth();
          assertTrue(depth >= 0 && depth <= 1, "depth " + depth);
          if (fixed != null) {
            assertEquals(fixed, depth, 0.1, "a fixed depth is kept up to rounding to a sentence");
          }
          String body = r.prompt().substring(r.prompt().indexOf("\n\n") + 2, r.prompt().lastIndexOf("\n\n"));
          String[] pieces = Haystack.SENTENCE_BREAK.split(body);
          String needleStart = task == Task.PASSKEY ? "The pass key is " : "One of the special magic numbers";
          int at = -1;
          for (int i = 0; i < pieces.length; ++i) {
            if (pieces[i].startsWith(needleStart)) {
              at = i;
              break;
            }
          }
          int needlePieces = task == Task.PASSKEY ? 3 : 2;  // the needle's own sentence breaks
          int sentences = pieces.length - needlePieces;
          assertTrue(at >= 0, body);
          assertEquals(depth * sentences, at, 1.0, task + " seed " + seed + ": needle at sentence " + at + " of "
              + sentences + ", depth " + depth);
        }
      }
    }
  }

  @Test
  void promptsFillTheBudgetWithinASentenceWithEitherCounter() {
    List<TokenCounter> counters = List.of(ApproxTokenCounter.INSTANCE, BenchFixtures.qwen3());
    for (TokenCounter counter : counters) {
      TaskGenerator g = new TaskGenerator(haystack, counter, null);
      int unit = 0;
      for (int i = 0; i < haystack.size(); ++i) unit = Math.max(unit, counter.count(" " + haystack.sentence(i)));
      unit = Math.max(unit, counter.count(", \"0123abcd\": \"4567ef01\""));
      for (Task task : List.of(Task.PASSKEY, Task.NIAH_SINGLE, Task.NIAH_MULTIKEY, Task.NIAH_MULTIVALUE,
          Task.VARIABLE_TRACKING, Task.KV_RETRIEVAL, Task.NIAH_MULTIQUERY)) {
        for (int length : new int[] {300, 1000, 3000}) {
          for (long seed = 0; seed < 3; ++seed) {
            TaskRecord r = g.generate(task, seed, length);
            int exact = counter.count(r.prompt());
            String what = task + " length " + length + " seed " + seed + " with " + counter;
            assertEquals(exact, r.promptTokens(), what);
            assertTrue(exact <= length, what + ": " + exact + " tokens");
            assertTrue(exact >= length - unit - 16, what + ": only " + exact + " tokens (a unit is up to " + unit + ")");
          }
        }
      }
      for (int length : new int[] {500, 2000}) {
        TaskRecord r = g.generate(Task.DOCQA, 5, length);
        assertEquals(counter.count(r.prompt()), r.promptTokens());
        assertTrue(r.promptTokens() <= length);
        assertTrue(r.parts().size() - 2 == 64 || r.promptTokens() >= length - 6 * unit - 60, "docqa " + length + ": "
            + r.promptTokens());
      }
    }
  }

  @Test
  void errorsNameTheFileTheTaskAndTheMinimum() throws Exception {
    Path missing = tmp.resolve("no-such-haystack.txt");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Haystack.load(missing));
    assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    Path empty = Files.writeString(tmp.resolve("empty.txt"), "\n  \n");
    e = assertThrows(IllegalArgumentException.class, () -> Haystack.load(empty));
    assertTrue(e.getMessage().contains(empty.toString()) && e.getMessage().contains("empty"), e.getMessage());

    e = assertThrows(IllegalArgumentException.class, () -> approx.generate(Task.PASSKEY, 1, 20));
    assertTrue(e.getMessage().contains("passkey") && e.getMessage().contains("length 20"), e.getMessage());
    Matcher min = Pattern.compile("minimum is (\\d+) tokens").matcher(e.getMessage());
    assertTrue(min.find(), e.getMessage());
    int minimum = Integer.parseInt(min.group(1));
    approx.generate(Task.PASSKEY, 1, minimum);  // exactly the minimum fits: the needle with no haystack
    assertThrows(IllegalArgumentException.class, () -> approx.generate(Task.PASSKEY, 1, minimum - 1));

    e = assertThrows(IllegalArgumentException.class, () -> approx.generate(Task.DOCQA, 1, 60));
    assertTrue(e.getMessage().contains("docqa") && e.getMessage().contains("minimum is"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> approx.generate(Task.ARITHMETIC, 1, 2));
    assertTrue(e.getMessage().contains("arithmetic") && e.getMessage().contains("minimum is"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> Task.of("passkeys"));
    assertTrue(e.getMessage().contains("niah_multikey"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new TaskGenerator(null, ApproxTokenCounter.INSTANCE, null).generate(Task.PASSKEY, 1, 500));
    assertTrue(e.getMessage().contains("haystack"), e.getMessage());
    // The tasks without prose need no haystack.
    new TaskGenerator(null, ApproxTokenCounter.INSTANCE, null).generate(Task.KV_RETRIEVAL, 1, 500);
  }

  @Test
  void haystackSplitsSentencesAndKeepsParagraphs() throws Exception {
    Path file = Files.writeString(tmp.resolve("small.txt"), "One. Two!  Three? Four; five: six\n\nSeven.\n");
    Haystack h = Haystack.load(file);
    assertEquals(List.of("One.", "Two!", "Three?", "Four;", "five:", "six", "Seven."),
        java.util.stream.IntStream.range(0, h.size()).mapToObj(h::sentence).toList());
    StringBuilder sb = new StringBuilder();
    h.append(sb, 5, 4, new int[] {0, 2, 4}, new String[] {"A.", "B.", "C."});
    // From "six" (index 5): wraps to "One."; the paragraph breaks before "Seven." and "One." are newlines.
    assertEquals("A. six\nSeven. B.\nOne. Two! C.", sb.toString());
    Set<String> seen = new HashSet<>();
    for (int i = 0; i < h.size(); ++i) seen.add(h.separatorBefore(i));
    assertEquals(Set.of(" ", "\n"), seen);
  }
}
