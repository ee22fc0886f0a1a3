"""`kt generate RUN_OR_PATH --prompt "..."`: continue a prompt, printing tokens as they come;
`--chat "..."` (with `--system "..."`): the assistant's answer to a message, through the
model's chat template."""

import sys

HELP = "continue a text prompt, or answer a chat message, with a language model"


def add_arguments(parser):
    parser.add_argument("target", metavar="RUN_OR_PATH",
                        help="a run folder, a .keras file, a Hugging Face folder, a .gguf "
                             "file or a Hub name (org/name, hf://org/name[@rev][/f.gguf])")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--prompt", help="the text to continue")
    text.add_argument("--chat", metavar="MESSAGE",
                      help="a user message, written with the model's chat template; prints the "
                           "assistant's answer")
    parser.add_argument("--system", help="with --chat: a system message before it")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--sampler", default="greedy",
                        help="greedy, temperature, top_k, top_p or beam (default: greedy)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--early-stopping", choices=["false", "true", "never"],
                        default="false", help="when beam search stops (Hugging Face's "
                                              "option; default: false)")
    parser.add_argument("--min-length", type=int, default=0,
                        help="no end token before the whole sequence (prompt included) has "
                             "this many tokens (default: 0, off)")
    parser.add_argument("--no-repeat-ngram-size", type=int, default=0, metavar="N",
                        help="never repeat an N-gram of the sequence (default: 0, off)")
    parser.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")


def prompt_or_messages(args):
    """The text of --prompt, or the messages of --chat (after the --system one)."""
    from training import checks

    if args.chat is None:
        if args.system is not None:
            raise ValueError("--system goes with --chat: give --chat \"message\" instead of "
                             "--prompt.")
        return checks.not_empty("--prompt", args.prompt)
    messages = [{"role": "user", "content": checks.not_empty("--chat", args.chat)}]
    if args.system is not None:
        content = checks.not_empty("--system", args.system)
        messages.insert(0, {"role": "system", "content": content})
    return messages


def run(args):
    from training import checks, runs
    from zoo import generation

    checks.at_least("--max-new-tokens", args.max_new_tokens)
    inputs = prompt_or_messages(args)
    model = runs.load_model(args.target)
    if not hasattr(model, "generate"):
        raise ValueError(f"{args.target} is a {type(model).__name__}, which cannot generate: "
                         "give a causal_lm or seq2seq_lm model (kt models lists them).")
    if getattr(model, "preprocessor", None) is None:
        raise ValueError(f"{args.target} has no tokenizer to read the prompt with: give a run "
                         "or checkpoint that carries one.")
    options = dict(sampler=args.sampler, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, seed=args.seed, min_length=args.min_length,
                   no_repeat_ngram_size=args.no_repeat_ngram_size)
    if args.sampler == "beam":  # whole sequences: printed at the end
        early_stopping = {"false": False, "true": True}.get(args.early_stopping, "never")
        print(model.generate(inputs, args.max_new_tokens, num_beams=args.num_beams,
                             length_penalty=args.length_penalty,
                             early_stopping=early_stopping, **options))
        return 0
    tokenizer = model.preprocessor.tokenizer
    stops = set(generation.default_stop_token_ids(model, chat=args.chat is not None))
    ids, shown = [], ""
    for token in generation.stream(model, inputs, args.max_new_tokens, **options):
        if token in stops:
            break
        ids.append(token)
        text = generation.detokenize(tokenizer, [ids])[0]
        if not text.endswith("\ufffd"):  # a character whose bytes are not all there yet
            sys.stdout.write(text[len(shown):])
            sys.stdout.flush()
            shown = text
    print(generation.detokenize(tokenizer, [ids])[0][len(shown):] if ids else "")
    return 0
