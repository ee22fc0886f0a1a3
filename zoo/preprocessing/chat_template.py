"""Chat templates: a conversation rendered as the prompt an instruct model was trained on.

An instruct model carries a Jinja template (GGUF's `tokenizer.chat_template`, a Hugging Face
folder's `chat_template`) that writes messages (`[{"role": "user", "content": "..."}]`) with
the model's turn markers: `<|im_start|>user\\nHi<|im_end|>\\n` for SmolLM2. The tokenizer keeps
it (`tokenizer.chat_template`, also reachable as `model.preprocessor.chat_template`), and
`model.generate(messages)` renders it, tokenizes the text (its markers become their special
ids) and stops at the template's end of turn.

`render_chat` renders as transformers' `apply_chat_template(..., tokenize=False)` does:
jinja2's `ImmutableSandboxedEnvironment` (templates come from the Hub: no private attributes,
no changing the messages), `trim_blocks` and `lstrip_blocks`, the globals `raise_exception`,
`strftime_now`, `namespace` (no underscore names) and `dict`, a `tojson` filter that keeps
non-ASCII text, loop controls (`{% break %}`) and `{% generation %}` blocks; messages are copied
as plain data with their None-valued keys dropped. A template that fails, or that calls
`raise_exception`, is a one-line `ValueError`.

Example:

>>> template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
...             "{% if add_generation_prompt %}<|assistant|>{% endif %}")
>>> render_chat(template, [{"role": "user", "content": "Hi"}], add_generation_prompt=True)
'<|user|>Hi</s><|assistant|>'
"""

import functools
import json
from collections.abc import Mapping
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.sandbox
import numpy as np

HOW_TO_SET = ("set one: model.preprocessor.chat_template = \"{% for m in messages %}...\" (a "
              "Jinja string, as a Hugging Face tokenizer_config.json's chat_template)")


class _Raised(jinja2.TemplateError):
    """What a template's `raise_exception(message)` raises."""


def _raise_exception(message):
    raise _Raised(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(format):
    return datetime.now().strftime(format)


class _Namespace(jinja2.utils.Namespace):
    """Jinja's `namespace()`, refusing names that start with an underscore."""

    def __init__(*args, **kwargs):  # Jinja's own signature: `namespace(self=...)` works
        self, args = args[0], args[1:]
        attributes = dict(*args, **kwargs)
        for name in attributes:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attributes)

    def __setitem__(self, name, value):
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} starts with _.")


class _Dict:
    """Jinja's `dict` global: `dict(a=1)` and `dict.fromkeys(...)`, and nothing of the type."""

    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _Generation(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` (the assistant's part, for training masks):
    rendered as its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def compile_template(template):
    """The Jinja template of `template` (a string), compiled once; a syntax error is a
    `ValueError`."""
    if not isinstance(template, str):
        raise ValueError(f"A chat template is a Jinja string, got {type(template).__name__}: "
                         f"{HOW_TO_SET}.")
    return _compile(template)


@functools.lru_cache(maxsize=32)
def _compile(template):
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols])
    environment.filters["tojson"] = _tojson
    environment.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now,
                               namespace=_Namespace, dict=_Dict())
    try:
        return environment.from_string(template)
    except jinja2.TemplateSyntaxError as error:
        raise ValueError(f"The chat template is not valid Jinja: {_line(error.message)} (line "
                         f"{error.lineno}).") from None


def _line(text):
    return " ".join(str(text).split())


def _plain(value):
    """`value` rebuilt from JSON types (dict, list, str, numbers, None): objects with methods
    never reach the template; any other object becomes `"<TypeName>"`."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, np.generic):
        return _plain(value.item())
    for kind in (str, int, float):  # subclasses (enums) as their base type
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return f"<{type(value).__name__}>"


def render_chat(template, messages, add_generation_prompt=False, **variables):
    """One conversation as text, rendered by `template` (transformers' way, see above).

    Args:
        template: the Jinja string.
        messages: a list of dicts (`{"role": ..., "content": ...}`); keys whose value is None
            are dropped first, as transformers does.
        add_generation_prompt: end with the opening of the assistant's turn (for generating).
        **variables: more names for the template (`bos_token`, `eos_token`, `tools`,
            `documents`: the last two None unless given).

    Raises a one-line `ValueError` when the template fails or calls `raise_exception`.
    """
    compiled = compile_template(template)
    messages = [{k: v for k, v in _plain(m).items() if v is not None} for m in messages]
    try:
        # `tools` and `documents` are None unless given, as in transformers.
        return compiled.render(**{"tools": None, "documents": None, **_plain(variables)},
                               messages=messages, add_generation_prompt=add_generation_prompt)
    except _Raised as error:
        raise ValueError(f"The chat template refuses this conversation: {_line(error)}") from None
    except jinja2.exceptions.SecurityError as error:
        raise ValueError(f"The chat template did something the sandbox forbids ({_line(error)}): "
                         "templates may only read the messages.") from None
    except Exception as error:  # noqa: BLE001 (a template is code: any of its errors, named)
        raise ValueError(f"The chat template failed on this conversation: "
                         f"{type(error).__name__}: {_line(error)}") from None


def as_conversations(inputs):
    """`(conversations, scalar)` when `inputs` are chat messages, else None.

    A list of dicts is one conversation (`scalar` True); a list of such lists is a batch.
    """
    if not isinstance(inputs, (list, tuple)) or not inputs:
        return None
    if isinstance(inputs[0], Mapping):
        conversations, scalar = [inputs], True
    elif isinstance(inputs[0], (list, tuple)) and inputs[0] and isinstance(inputs[0][0], Mapping):
        conversations, scalar = list(inputs), False
    else:
        return None
    for i, conversation in enumerate(conversations):
        if not isinstance(conversation, (list, tuple)) or not conversation:
            raise ValueError(f"Conversation {i} is empty or not a list of messages: give a list "
                             "like [{\"role\": \"user\", \"content\": \"...\"}].")
        for j, message in enumerate(conversation):
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
                raise ValueError(
                    f"Message {j} of conversation {i} is not a dict with a 'role': give dicts "
                    "like {\"role\": \"user\", \"content\": \"...\"}.")
    return conversations, scalar


def template_variables(tokenizer):
    """`bos_token` and `eos_token`: the tokenizer's start and end tokens, where it has them
    (a template that writes `{{ bos_token }}` gets "" otherwise, as in transformers)."""
    variables = {}
    for name, index in (("bos_token", tokenizer.start_id), ("eos_token", tokenizer.end_id)):
        if index is not None:
            variables[name] = tokenizer.id_to_token(index)
    return variables


def _template_of(tokenizer):
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        raise ValueError(f"This model's tokenizer has no chat template, so messages cannot be "
                         f"written as a prompt: {HOW_TO_SET}; or pass the prompt as text.")
    return template


def render_conversations(tokenizer, conversations, add_generation_prompt=True):
    """The prompts of `conversations` (lists of messages) by the tokenizer's chat template, as
    a list of strings; a tokenizer without a template is a one-line `ValueError`."""
    template = _template_of(tokenizer)
    variables = template_variables(tokenizer)
    return [render_chat(template, conversation, add_generation_prompt, **variables)
            for conversation in conversations]


# Written as an assistant's message to find what the template puts after one.
_PROBE = "zoo-chat-probe-7f3a"


def end_of_turn(tokenizer):
    """The token the chat template writes after an assistant's message (`<|im_end|>` for
    SmolLM2, `<|eot_id|>` for Llama 3), or None when it writes no special token there (or
    cannot render a user-assistant exchange).

    Found by rendering `[user, assistant]` with a probe as the assistant's content: the
    longest of the tokenizer's special tokens (`special_tokens`, the start and end tokens)
    that the text after it starts with, whitespace skipped.
    """
    template = _template_of(tokenizer)
    probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE}]
    variables = template_variables(tokenizer)
    try:
        text = render_chat(template, probe, **variables)
    except ValueError:
        return None
    if _PROBE not in text:
        return None
    after = text.split(_PROBE, 1)[1].lstrip()
    candidates = [*getattr(tokenizer, "special_tokens", ()), *variables.values()]
    matches = [token for token in candidates if token and after.startswith(token)]
    return max(matches, key=len) if matches else None
