#!/usr/bin/python3
"""Expected chat-template renderings for the Java tests, from Python jinja2 set up as Hugging Face
transformers sets it up in apply_chat_template (transformers/utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension and a `generation` block tag, a `tojson` filter that is plain json.dumps (no HTML
escaping, keys in insertion order), `raise_exception` and `strftime_now` globals, and the render
variables messages, tools (None when absent), documents, add_generation_prompt, the special tokens
and any extra keyword arguments. strftime_now reads a fixed instant so the output is reproducible.

    /usr/bin/python3 render_templates.py <cache dir> <out file>      (regenerate.sh passes both)

Run it with Debian's python3-jinja2 (/usr/bin/python3); the jinja2 version is recorded in the output.
"""
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The instant strftime_now reports; the Java test gives ChatTemplate a clock fixed at the same one.
FIXED_NOW = datetime(2025, 3, 7, 14, 5, 9)


class GenerationTag(Extension):
    """transformers' AssistantTracker without the index bookkeeping: {% generation %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_text(value):
    """bos_token / eos_token of tokenizer_config.json: a string, an AddedToken object or null."""
    if isinstance(value, dict):
        return value.get("content")
    return value


# Template name -> (template file relative to the cache, tokenizer_config.json for its special tokens).
TEMPLATES = {
    "qwen3": ("qwen3/tokenizer_config.json", "qwen3/tokenizer_config.json"),
    "llama3": ("llama3/tokenizer_config.json", "llama3/tokenizer_config.json"),
    "llama3_1": ("llama3_1/tokenizer_config.json", "llama3_1/tokenizer_config.json"),
    # The full templates of the published Llama 3.1 / 3.2 instruct models (fetch.sh says where from).
    "llama3_1_full": ("chat-templates/llama3_1.jinja", "llama3_1/tokenizer_config.json"),
    "llama3_2": ("chat-templates/llama3_2.jinja", "llama3_1/tokenizer_config.json"),
}


def load_template(cache, name):
    source, _ = TEMPLATES[name]
    path = cache / source
    if path.suffix == ".jinja":
        return path.read_text(encoding="utf-8")
    template = json.loads(path.read_text(encoding="utf-8"))["chat_template"]
    if isinstance(template, list):
        template = next(t["template"] for t in template if t["name"] == "default")
    return template


# transformers passes its special_tokens_map: these fields of tokenizer_config.json, when set.
SPECIAL_TOKEN_FIELDS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                        "mask_token", "additional_special_tokens")


def special_tokens(cache, name):
    config = json.loads((cache / TEMPLATES[name][1]).read_text(encoding="utf-8"))
    tokens = {}
    for key in SPECIAL_TOKEN_FIELDS:
        value = config.get(key)
        if key == "additional_special_tokens":
            if value:
                tokens[key] = [token_text(v) for v in value]
        elif token_text(value) is not None:
            tokens[key] = token_text(value)
    return tokens


SYSTEM = {"role": "system", "content": "You are a concise assistant."}
USER = {"role": "user", "content": "What is the capital of Norway?"}
ASSISTANT = {"role": "assistant", "content": "Oslo."}
USER2 = {"role": "user", "content": "And its population, roughly?"}
UNICODE_USER = {
    "role": "user",
    # Leading/trailing whitespace of several kinds (trim must strip like Python's str.strip),
    # multi-byte text, and braces that must come out literally, not be rendered again.
    "content": " \u3000\t Grüße, 世界 🚀 {{ not_a_variable }} {% raw %}\n\u00a0\n",
}
THINKING_ASSISTANT = {
    "role": "assistant",
    "content": "<think>\nThe user asks about Norway.\n</think>\n\nOslo.",
}
REASONING_ASSISTANT = {
    "role": "assistant",
    "content": "Oslo.",
    "reasoning_content": "\nRecall: the capital of Norway is Oslo.\n",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city, in °C.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Oslo\""},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "ratio": {"type": "number", "default": 0.5},
                "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TOOL_CALL_ASSISTANT = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}}
    ],
}
TOOL_RESULT = {"role": "tool", "content": "{\"temperature\": -3, \"sky\": \"snow\"}"}


def case(label, template, messages, add_generation_prompt, **variables):
    return {
        "label": label,
        "template": template,
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "variables": variables,
    }


CASES = []
for name in TEMPLATES:
    CASES += [
        case(f"{name}: system + user, generation prompt", name, [SYSTEM, USER], True),
        case(f"{name}: user only, no generation prompt", name, [USER], False),
        case(f"{name}: multi-turn", name, [SYSTEM, USER, ASSISTANT, USER2], True),
        case(f"{name}: whitespace and unicode", name, [UNICODE_USER, ASSISTANT], False),
    ]
CASES += [
    case("qwen3: enable_thinking false", "qwen3", [SYSTEM, USER], True, enable_thinking=False),
    case("qwen3: enable_thinking true", "qwen3", [SYSTEM, USER], True, enable_thinking=True),
    case("qwen3: think block in history", "qwen3", [USER, THINKING_ASSISTANT, USER2], True),
    case("qwen3: think block in last turn", "qwen3", [USER, THINKING_ASSISTANT], False),
    case("qwen3: reasoning_content", "qwen3", [SYSTEM, USER, REASONING_ASSISTANT], False),
    case("qwen3: tools and tool calls", "qwen3",
         [SYSTEM, USER, TOOL_CALL_ASSISTANT, TOOL_RESULT, TOOL_RESULT], True, tools=[WEATHER_TOOL]),
    case("llama3_2: tools in the user message", "llama3_2", [SYSTEM, USER], True, tools=[WEATHER_TOOL]),
    case("llama3_2: tools in the system message", "llama3_2", [USER], True,
         tools=[WEATHER_TOOL], tools_in_user_message=False),
    case("llama3_2: tool call and result", "llama3_2",
         [USER, TOOL_CALL_ASSISTANT, TOOL_RESULT], True),
    case("llama3_2: raise_exception, no first user message", "llama3_2", [SYSTEM], True,
         tools=[WEATHER_TOOL]),
    case("llama3_2: raise_exception, two tool calls", "llama3_2",
         [USER, dict(TOOL_CALL_ASSISTANT, tool_calls=TOOL_CALL_ASSISTANT["tool_calls"] * 2)], True),
    case("llama3_1_full: date_string and builtin tools", "llama3_1_full", [SYSTEM, USER], True,
         date_string="01 Jan 2030", builtin_tools=["brave_search", "code_interpreter", "wolfram_alpha"]),
]


# Small templates, one feature each, so a mismatch points at the feature; rendered with the same
# environment and these variables.
SNIPPET_VARIABLES = {
    "messages": [SYSTEM, USER, ASSISTANT, USER2],
    "data": {"name": "kvasir", "n": 3, "ratio": 0.25, "tags": ["a", "b"], "nested": {"x": None, "ok": True}},
    "text": "  <think>\nstep one\n</think>\n\nAnswer: 42  ",
    "wide": "h\u00e9llo \U0001F680 w\u00f6rld",
    "items": [{"name": "b", "v": 2}, {"name": "a", "v": 1}, {"name": "c", "v": 3}],
}
SNIPPETS = [
    # slicing
    "{{ messages[::-1]|map(attribute='role')|join(',') }}",
    "{{ messages[1:]|length }} {{ messages[:-1]|length }} {{ messages[-2:]|map(attribute='role')|join(',') }}",
    "{{ [1, 2, 3, 4, 5][1:-1:2] }} {{ [1, 2, 3, 4][3:0:-1] }} {{ [1, 2, 3][5:] }} {{ [1, 2, 3][::-2] }}",
    "{{ 'abcdef'[::2] }}|{{ 'abcdef'[::-1] }}|{{ wide[1:7] }}|{{ wide[-5:] }}|{{ wide[0] }}{{ wide[-1] }}",
    # string methods
    "{{ text.strip() }}|{{ text.lstrip() }}|{{ text.rstrip() }}|{{ text.strip(' \n') }}|{{ 'xxhixx'.strip('x') }}",
    "{{ text.split('</think>')[-1].lstrip('\n') }}|{{ text.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }}",
    "{{ 'a b  c\td'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ''.split() }}",
    "{{ text.startswith('  <think>') }} {{ text.endswith('42  ') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('b') }}",
    "{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '+', 1) }} {{ 'hello World'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello wORLD'.title() }} {{ 'hello World'.capitalize() }}",
    "{{ wide.find('w') }} {{ 'banana'.count('an') }} {{ '-'.join(['a', 'b', 'c']) }} {{ 'l1\nl2\r\nl3\n'.splitlines() }} {{ wide|length }} {{ 'x'.find('y') }}",
    # namespace, loops
    "{% set ns = namespace(count=0, last='') %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.count = ns.count + 1 %}{% set ns.last = m.content %}{% endif %}{% endfor %}{{ ns.count }}:{{ ns.last }}",
    "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }};{% endfor %}",
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% for k, v in data.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in data %}{{ k }},{% endfor %}|{{ data.get('name') }} {{ data.get('missing', 'dflt') }}",
    "{% for it in items|sort(attribute='name') %}{{ it.name }}{% endfor %} {{ items|selectattr('v', 'gt', 1)|map(attribute='name')|join }} {{ items|map(attribute='v')|sum }}",
    "{% macro turn(role, content) %}<{{ role }}>{{ content|trim }}</{{ role }}>{% endmacro %}{% for m in messages %}{{ turn(m.role, m.content) }}{% endfor %}",
    "{% generation %}gen {{ 1 + 1 }}{% endgeneration %}",
    # values as Python prints them
    "{{ true }} {{ false }} {{ 1.0 }} {{ 10 / 4 }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ 'a' ~ 1 }} {{ -3 }}",
    "{{ [1, 'a', none, true] }} {{ {'a': 1, 'b': [2]} }} {{ data.tags }}",
    # tests and operators
    "{{ data is mapping }} {{ data.tags is iterable }} {{ 'x' is string }} {{ data.n is number }} {{ data.nested.x is none }} {{ undefined_thing is defined }} {{ data.nested.ok is true }} {{ false is false }}",
    "{{ 'abc' is iterable }} {{ 'abc' is sequence }} {{ data is sequence }} {{ 3 is iterable }} {{ data.nested.x is iterable }}",
    "{{ 'a' in 'cat' }} {{ 'name' in data }} {{ 'zz' not in data }} {{ 2 in [1, 2] }} {{ not data.nested.ok }} {{ not undefined_thing is defined }}",
    "{{ data.missing | default('d') }} {{ data.n | string }} {{ '42' | int + 1 }} {{ data.tags | first }}{{ data.tags | last }} {{ 'Grüße' | upper }}",
    # tojson as transformers defines it
    "{{ data | tojson }}",
    "{{ data | tojson(indent=2) }}",
    "{{ data | tojson(sort_keys=true) }}|{{ data.tags | tojson(separators=(',', ':')) }}|{{ wide | tojson }}|{{ wide | tojson(ensure_ascii=true) }}",
    r"""{{ {'q': 'say "hi" \n tab\t backslash\\ end', 'f': [0.1, 1e-07, 1e16, 123456789.0, -2.5], 'e': {}, 'l': []} | tojson }}""",
    # trim and whitespace control
    "{{ '\u3000 full width \u00a0\n' | trim }}|{{ 'xxaxx' | trim('x') }}",
    "a {% if true %}b{% endif %} c\n  {% if true %}\n  d\n  {% endif %}\ne",
    "  {%- if true %} x {% endif -%}  \n y\n   {# comment #}\nz {# c2 -#}   w",
    "{% for m in messages %}\n    {{- m.role }}\n    {%- if not loop.last %}, {% endif %}\n{% endfor %}\n",
    "line\n{{ 'ends with newline\n' }}",
    "\t{% set x = 1 %}\n  {{ x }} {{- ' y' }}  \n{{ x -}}\n\n  z",
    # globals
    "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %j %I%p') }}|{{ strftime_now is defined }}",
    "before{{ raise_exception('custom failure: ' ~ data.name) }}after",
]


def render_snippet(env, snippet):
    try:
        return {"expected": env.from_string(snippet).render(**SNIPPET_VARIABLES)}
    except jinja2.exceptions.TemplateError as e:
        return {"expected_error": str(e)}


def render(env, cache, c):
    template = env.from_string(load_template(cache, c["template"]))
    variables = dict(special_tokens(cache, c["template"]))
    variables.update(c["variables"])
    variables.setdefault("tools", None)
    try:
        return {"expected": template.render(
            messages=c["messages"], documents=None,
            add_generation_prompt=c["add_generation_prompt"], **variables)}
    except jinja2.exceptions.TemplateError as e:
        return {"expected_error": str(e)}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: render_templates.py <cache dir> <out file>")
    cache, out = Path(sys.argv[1]), Path(sys.argv[2])
    env = environment()
    result = {
        "generator": f"jinja2 {jinja2.__version__} (python {sys.version.split()[0]})",
        "script": "tools/tokenizers/render_templates.py",
        "now": FIXED_NOW.isoformat(),
        "special_tokens": {name: special_tokens(cache, name) for name in TEMPLATES},
        "templates": {name: TEMPLATES[name][0] for name in TEMPLATES},
        "cases": [dict(c, **render(env, cache, c)) for c in CASES],
        "snippet_variables": SNIPPET_VARIABLES,
        "snippets": [dict({"template": t}, **render_snippet(env, t)) for t in SNIPPETS],
    }
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum("expected_error" in c for c in result["cases"])
    print(f"[tokenizers] {out}: {len(CASES)} renderings ({errors} raise_exception), {len(SNIPPETS)} snippets",
          file=sys.stderr)


if __name__ == "__main__":
    main()

