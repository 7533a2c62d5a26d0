"""The bounds seinject puts on what users give it, in one place (README "Safety" quotes them).

Each bound keeps one input from costing more than a stated amount of time or memory;
none of them is near what a real rule or model needs.

Example:
    >>> MAX_BLOCK_PARAMS * 4 == 2**30   # one SE block: at most 1 GiB of fp32 parameters
    True
"""

MAX_RULE_BYTES = 1 << 20      # a rule file (built-in ones are < 2 KB)
MAX_YAML_NODES = 20_000       # scalars, lists and mappings in one rule document
MAX_YAML_ALIASES = 100        # `*alias` uses in one rule document
MAX_YAML_DEPTH = 32           # nesting of lists and mappings

MAX_COUNT = 2**31 - 1         # first, last, every, offset, channel bounds, stages
MAX_LIST_ITEMS = 256          # items of include, exclude, stages, fn, kind, kernel_size, ...
MAX_REGEX_CHARS = 1000        # one include/exclude/also pattern
REGEX_SECONDS = 2.0           # all matching of user patterns against a model's names, per call

MIN_RATIO = 1 / 16            # hidden width at most 16 × channels
MAX_RATIO = float(2**20)
MAX_HIDDEN = 2**16            # min_hidden, divisor and the hidden width of any block
MAX_BLOCK_PARAMS = 2**28      # parameters of one inserted block (1 GiB in fp32)

MAX_INPUT_ELEMENTS = 2**28    # one random ONNX verification input (and any given input shape)
MAX_INPUT_BYTES = 2**30       # ... and its bytes
MAX_RANK = 64                 # dims of one given input shape
MAX_METADATA_CHARS = 64 * 1024  # an ONNX scope metadata value longer than this is ignored
MAX_LITERAL_CHARS = 4 * 1024  # ... or this, when it needs ast.literal_eval (escapes, other quotes)
