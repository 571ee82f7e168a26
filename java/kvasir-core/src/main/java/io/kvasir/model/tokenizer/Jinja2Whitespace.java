package io.kvasir.model.tokenizer;

import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TextNode;
import com.hubspot.jinjava.tree.parse.NoteToken;
import com.hubspot.jinjava.tree.parse.TagToken;
import com.hubspot.jinjava.tree.parse.TextToken;
import com.hubspot.jinjava.tree.parse.Token;
import com.hubspot.jinjava.tree.parse.TokenScanner;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.ListIterator;
import java.util.Map;

/**
 * Jinja2's whitespace rules for the text between tags, applied to a Jinjava tree. Jinjava's
 * {@code lstripBlocks} strips spaces before every block tag, also after other text on the same
 * line ({@code "a {% if x %}"} loses its space; jinja2 keeps it), and a {@code -#}} comment end
 * does not strip what follows. So templates are parsed with Jinjava's lstrip off and adjacent
 * text nodes kept apart, and this pass recomputes every text node from Jinjava's own token
 * stream the way jinja2's lexer does ({@code jinja2/lexer.py}, {@code tokeniter}):
 * <ul>
 *   <li>after a tag, expression or comment closed with {@code -}: leading whitespace goes;</li>
 *   <li>before one opened with {@code -}: trailing whitespace goes;</li>
 *   <li>before a block tag or comment opened without {@code -} or {@code +} (lstrip_blocks):
 *       the spaces between the last newline and the tag go, if only whitespace stands there and
 *       the text starts a line or contains a newline.</li>
 * </ul>
 * trim_blocks (the newline after a block tag or comment) is Jinjava's scanner's and matches.
 */
final class Jinja2Whitespace {
  private Jinja2Whitespace() {}

  /**
   * Rewrites the text nodes of {@code root}, which Jinjava parsed from {@code source} with
   * {@code config} (lstripBlocks off, adjacent text nodes allowed), and clears their trim flags:
   * their content is then exactly what jinja2 with {@code lstrip_blocks=True} outputs.
   *
   * @throws IllegalStateException if the token stream cannot be lined up with the source
   */
  static void apply(Node root, String source, JinjavaConfig config) {
    Map<Long, String> texts = jinja2Texts(source, config);
    rewrite(root, texts);
  }

  private static long key(Token t) {
    return ((long) t.getLineNumber() << 32) | (t.getStartPosition() & 0xffffffffL);
  }

  /** The jinja2 output of each text token, keyed by its position. */
  private static Map<Long, String> jinja2Texts(String source, JinjavaConfig config) {
    List<Token> tokens = new ArrayList<>();
    new TokenScanner(source, config).forEachRemaining(tokens::add);
    // Offsets of each token in the source: tokens are verbatim slices, except that trim_blocks
    // drops one newline after a block tag or comment.
    int[] starts = new int[tokens.size()];
    int cursor = 0;
    for (int i = 0; i < tokens.size(); i++) {
      String image = tokens.get(i).getImage();
      if (!source.startsWith(image, cursor) && cursor < source.length() && source.charAt(cursor) == '\n'
          && source.startsWith(image, cursor + 1)) {
        cursor++;
      }
      if (!source.startsWith(image, cursor)) {
        throw new IllegalStateException("token " + i + " does not line up with the template at offset " + cursor);
      }
      starts[i] = cursor;
      cursor += image.length();
    }

    Map<Long, String> texts = new HashMap<>();
    for (int i = 0; i < tokens.size(); i++) {
      Token token = tokens.get(i);
      if (!(token instanceof TextToken)) {
        continue;
      }
      String text = token.getImage();
      int start = starts[i];
      Token previous = i > 0 ? tokens.get(i - 1) : null;
      Token next = i + 1 < tokens.size() ? tokens.get(i + 1) : null;
      if (previous != null && !(previous instanceof TextToken) && closesWithMinus(previous)) {
        String stripped = PyStrings.lstrip(text, null);
        start += text.length() - stripped.length();
        text = stripped;
      }
      if (next != null && !(next instanceof TextToken)) {
        String control = openingControl(next);
        if (control.equals("-")) {
          text = PyStrings.rstrip(text, null);
        } else if (control.isEmpty() && lstrips(next)) {
          text = lstripBeforeBlock(text, start == 0 || source.charAt(start - 1) == '\n');
        }
      }
      texts.put(key(token), text);
    }
    return texts;
  }

  /** Block tags and comments (not expressions) take lstrip_blocks. */
  private static boolean lstrips(Token next) {
    return next instanceof TagToken || next instanceof NoteToken;
  }

  private static String lstripBeforeBlock(String text, boolean lineStarting) {
    int lineStart = text.lastIndexOf('\n') + 1;
    if (lineStart == 0 && !lineStarting) {
      return text;
    }
    if (lineStart == text.length()) {
      return text;
    }
    for (int i = lineStart; i < text.length(); ) {
      int c = text.codePointAt(i);
      if (!PyStrings.isSpace(c)) {
        return text;
      }
      i += Character.charCount(c);
    }
    return text.substring(0, lineStart);
  }

  /** "-" or "+" right after the opening delimiter ({@code {%-}, {@code {{+}), else "". */
  private static String openingControl(Token t) {
    String image = t.getImage();
    if (image.length() > 2 && (image.charAt(2) == '-' || image.charAt(2) == '+')) {
      return String.valueOf(image.charAt(2));
    }
    return "";
  }

  private static boolean closesWithMinus(Token t) {
    String image = t.getImage();
    return image.length() >= 5 && image.charAt(image.length() - 3) == '-';
  }

  private static void rewrite(Node node, Map<Long, String> texts) {
    ListIterator<Node> it = node.getChildren().listIterator();
    while (it.hasNext()) {
      Node child = it.next();
      if (child instanceof TextNode) {
        String text = texts.get(key(child.getMaster()));
        if (text == null) {
          throw new IllegalStateException("text node at line " + child.getLineNumber() + " has no token");
        }
        Token master = child.getMaster();
        TextNode replaced = new TextNode(new TextToken(text, master.getLineNumber(), master.getStartPosition(),
            master.getSymbols()));
        replaced.setParent(node);
        it.set(replaced);
      } else {
        rewrite(child, texts);
      }
    }
  }
}
