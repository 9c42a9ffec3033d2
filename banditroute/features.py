"""Query + metadata -> the shared-context features of one decision, as VW text. Pure and fast.

The result is a compact string (a few hundred bytes) in VW's text format with three namespaces:

- `w` words: lower-cased word unigrams and adjacent bigrams of the first `max_words` words, and the
  unigrams of the last `tail_words` words of a longer query, each as its keyed hash (`WordTokens`);
- `x` structure: length buckets and signals for code, math, lists, questions, URLs, JSON and the
  script the text is written in; with `simhash_tables` > 0 also SimHash buckets of the words
  (`h<table>_<code>`): each distinct word hashes to a pseudo-random ±1 vector, the signs of their
  sum give `simhash_bits` bits per table, so prompts sharing most of their words (the same template,
  task or log source) share buckets: a few coarse features that recur across requests;
- `c` characters (when `char_ngrams` > 0): character n-grams of the first `char_window` characters,
  lower-cased, with digits folded to `0` so that "2015-10-18 18:01:47" and "2016-01-02 07:30:00"
  give the same grams: the format of a log line, a stack trace or a code snippet shows here even
  when its words are all identifiers never seen before; hashed like the words;
- `u` metadata: `key=value` categories for the configured metadata keys.

With `shape_numbers`, a word with a digit in it is replaced by its shape (`#num3` for a number of
up to 3 digits... `#hex` for a hex string, `#id` for a mixed id) so that ids, counters and
addresses, each seen once, become a few features that recur.

The policy crosses each of them with the action namespace, so every model gets its own weights per
feature. Pending decisions keep this string, not a parsed VW example (about 32 KB each).

The string is logged with the decision (learning again from the log needs it), so it holds no query
text: words and character grams become tokens of a keyed hash (BLAKE2b, 30 bits, five characters),
the same live and in the log, so a policy relearned from the log equals the live one. Without the
key a token tells nothing of its word; the service keys it with `word_key` of its data directory's
secret. `with_words=False` (requests flagged sensitive, see router.py) leaves the words, their
SimHash and the grams out altogether: only the structure and the metadata remain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

import numpy as np

from banditroute.config import FeaturesConfig

_WORD = re.compile(r"\w+")
_UNSAFE = re.compile(r"[\s|:]+")  # characters VW's text format gives meaning to
_DIGITS = str.maketrans("123456789", "000000000")
# Characters VW's text format gives meaning to, mapped to stand-ins inside character grams.
_CHAR_SAFE = str.maketrans({" ": "_", "\t": "_", "\n": "~", "\r": "~", "|": "!", ":": ";"})
_HEX = re.compile(r"(?:0x)?[0-9a-f]+")
# The code and math signals are split into literal checks (C-speed `in`) and small regexes: one
# alternation of them all cost most of a long query's featurizing time in the profile.
_CODE_LITERALS = ("```", "=>", "::")
_CODE_CALL = re.compile(r"\w\(\)")  # a call `f()`; `\w`, not `\w+`: the same matches without backtracking
_CODE_LINE_END = re.compile(r"[{};]\s*$", re.MULTILINE)
_CODE_KEYWORD = re.compile(
    r"^\s*(?:def|class|import|from|#include|public|private|function|const|let|var|SELECT|return)\b", re.MULTILINE
)
_MATH_TEX = re.compile(r"\\(?:frac|sqrt|sum|int|cdot)")
_MATH_DOLLARS = re.compile(r"\$[^$\n]+\$")
_MATH_OPERATION = re.compile(r"\d\s*[-+*/^=<>]\s*\d")
_MATH_WORDS = ("solve", "equation", "integral", "derivative", "probability")
_MATH_WORD = re.compile(r"\b(?:" + "|".join(_MATH_WORDS) + r")\b")  # on lower-cased text
_LIST = re.compile(r"^\s*(?:[-*•]|\d+[.)]|[A-Da-d][.)])\s+", re.MULTILINE)
_URL_LITERALS = ("http://", "https://", "www.")
_QUESTION_WORDS = frozenset(
    [
        "what",
        "why",
        "how",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "is",
        "are",
        "can",
        "could",
        "should",
        "would",
        "does",
        "do",
        "did",
        "will",
        "explain",
    ]
)
# A small sample of the text is enough for the signals; the lengths use the whole text.
_SIGNAL_CHARS = 4000


# Distinct words (and grams) whose tokens are remembered: the hash costs ~1 µs, a hit ~50 ns. Words
# follow Zipf's law, so this many cover nearly every word of a stream; when full, the cache starts over.
TOKEN_CACHE_MAX = 1 << 16
_TOKEN_BYTES = 4  # 32 bits of BLAKE2b, of which the token's 5 base64 characters keep 30
_TOKEN_CHARS = 5
# The label of the word key: one secret, two uses (reward tokens, word tokens), never one key for both.
_WORD_KEY_LABEL = b"banditroute word features v1"


def word_key(secret: bytes) -> bytes:
    """The key of the word tokens, derived from the data directory's secret: HMAC-SHA256(secret, label),
    one HKDF-Expand block, so the reward tokens' key (the secret itself) serves no second purpose."""
    return hmac.digest(secret, _WORD_KEY_LABEL, "sha256")


class _TokenCache(dict[str, str]):
    """word -> token; a miss computes and keeps it. Bounded: when full it is cleared."""

    __slots__ = ("key", "max_size")

    def __init__(self, key: bytes, max_size: int) -> None:
        super().__init__()
        self.key = key
        self.max_size = max_size

    def __missing__(self, word: str) -> str:
        if len(self) >= self.max_size:
            self.clear()
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), key=self.key, digest_size=_TOKEN_BYTES).digest()
        token = base64.urlsafe_b64encode(digest)[:_TOKEN_CHARS].decode("ascii")
        self[word] = token
        return token


class WordTokens:
    """Words -> opaque tokens: BLAKE2b keyed with `key` (the service's: `word_key(secret)`), cached.

    A token is a deterministic function of the word and the key, so learning, relearning the log and
    retraining from it see the same features; 30 bits collide far less often than VW's own hashing
    (`policy.bits`) of the features does. Safe to share between threads (dict operations under the GIL).
    """

    __slots__ = ("_cache",)

    def __init__(self, key: bytes, cache_max: int = TOKEN_CACHE_MAX) -> None:
        self._cache = _TokenCache(key, cache_max)

    def __call__(self, words: Iterable[str]) -> list[str]:
        return list(map(self._cache.__getitem__, words))


# For simulations, benchmarks and tests (public words): the service passes its own, keyed.
UNKEYED = WordTokens(b"")


def featurize(
    query: str,
    metadata: Mapping[str, Any] | None,
    config: FeaturesConfig,
    tokens: WordTokens = UNKEYED,
    *,
    with_words: bool = True,
) -> str:
    """The VW shared-namespace text for one request; words and grams as `tokens` hashes them, or none."""
    head = query[:_SIGNAL_CHARS]
    lowered = query[: config.max_words * 16].lower()
    # The first `max_words` matches only: the scan stops there.
    matches = list(islice(_WORD.finditer(lowered), config.max_words))
    words = [m.group() for m in matches]
    # And the last `tail_words` of a longer prompt: after a shared few-shot prefix or a long context,
    # the part that tells prompts apart is often the end. The scan reads at most 16 characters a word.
    tail: list[str] = []
    if config.tail_words > 0 and len(matches) == config.max_words:
        start = max(matches[-1].end(), len(query) - config.tail_words * 16)
        tail = _WORD.findall(query[start:].lower())[-config.tail_words :]
    if config.shape_numbers:
        words = [_shape(w) if _has_digit(w) else w for w in words]
        tail = [_shape(w) if _has_digit(w) else w for w in tail]
    parts = ["|w"]
    if with_words:
        parts.extend(tokens(dict.fromkeys(words + tail) if tail else dict.fromkeys(words)))
        if config.bigrams and len(words) > 1:
            # "a b": a space never occurs in a word, so a bigram's hash input is no word's
            parts.extend(tokens(dict.fromkeys(f"{a} {b}" for a, b in zip(words, words[1:]))))
    parts.append("|x")
    parts.extend(_structure(query, head, words))
    if config.simhash_tables > 0 and words and with_words:
        parts.extend(_simhash(words, config.simhash_tables, config.simhash_bits))
    if config.char_ngrams > 0 and with_words:
        grams = _char_grams(query[: config.char_window], config.char_ngrams)
        if grams:
            parts.append("|c")
            parts.extend(tokens(grams))
    if metadata:
        meta = _metadata(metadata, config.metadata_keys)
        if meta:
            parts.append("|u")
            parts.extend(meta)
    return " ".join(parts)


def _has_digit(word: str) -> bool:
    return any(c.isdigit() for c in word)


def _shape(word: str) -> str:
    """A number-bearing word as its shape: #num<digits bucket>, #hex or #id."""
    if word.isdigit():
        return f"#num{len(word).bit_length()}"
    if _HEX.fullmatch(word):
        return "#hex"
    return "#id"


# murmur3's 32-bit finaliser: spreads crc32's bits (linear over GF(2)) into well-mixed ones
_MIX_SHIFTS = (16, 13, 16)
_MIX_MULTIPLIERS = (0x85EBCA6B, 0xC2B2AE35)


def _simhash(words: list[str], tables: int, bits: int) -> list[str]:
    """`tables` SimHash codes of `bits` bits each over the distinct words."""
    h = np.fromiter((zlib.crc32(w.encode()) for w in dict.fromkeys(words)), dtype=np.uint32)
    h ^= h >> np.uint32(_MIX_SHIFTS[0])
    h *= np.uint32(_MIX_MULTIPLIERS[0])
    h ^= h >> np.uint32(_MIX_SHIFTS[1])
    h *= np.uint32(_MIX_MULTIPLIERS[1])
    h ^= h >> np.uint32(_MIX_SHIFTS[2])
    total = tables * bits
    ones = np.unpackbits(h.view(np.uint8), bitorder="little").reshape(len(h), 32)[:, :total].sum(axis=0)
    codes = (2 * ones > len(h)).reshape(tables, bits) @ (1 << np.arange(bits))
    return [f"h{t}_{c}" for t, c in enumerate(codes.tolist())]


def _char_grams(text: str, n: int) -> list[str]:
    folded = text.lower().translate(_DIGITS).translate(_CHAR_SAFE)
    return list(dict.fromkeys(folded[i : i + n] for i in range(len(folded) - n + 1)))


def _structure(query: str, head: str, words: list[str]) -> list[str]:
    n = len(query)
    out = [
        f"chars{n.bit_length()}",
        f"words{len(words).bit_length()}",
        f"lines{min(query.count(chr(10)), 64).bit_length()}",
    ]
    if _has_code(head):
        out.append("code")
    if _has_math(head):
        out.append("math")
    if _LIST.search(head):
        out.append("list")
    if any(lit in head for lit in _URL_LITERALS):
        out.append("url")
    stripped = head.lstrip()
    if stripped[:1] in "{[" and stripped[-1:] in "}]":
        out.append("json")
    if head.rstrip().endswith("?"):
        out.append("ends_q")
    if words and words[0] in _QUESTION_WORDS:
        out.append(f"q_{words[0]}")
    digits = _count_digits(head)
    if head:
        out.append(f"digits{(10 * digits) // len(head)}")
    out.append(f"script_{_script(head)}")
    return out


def _has_code(text: str) -> bool:
    return (
        any(lit in text for lit in _CODE_LITERALS)
        or ("()" in text and _CODE_CALL.search(text) is not None)
        or _CODE_LINE_END.search(text) is not None
        or _CODE_KEYWORD.search(text) is not None
    )


def _has_math(text: str) -> bool:
    return (
        ("\\" in text and _MATH_TEX.search(text) is not None)
        or ("$" in text and _MATH_DOLLARS.search(text) is not None)
        or _MATH_OPERATION.search(text) is not None
        or _has_math_word(text.lower())
    )


def _has_math_word(lowered: str) -> bool:
    # Substring checks in C first: the word-boundary regex runs only when a keyword occurs at all.
    return any(w in lowered for w in _MATH_WORDS) and _MATH_WORD.search(lowered) is not None


def _count_digits(text: str) -> int:
    if text.isascii():  # the common case: count on bytes, in C
        return len(text) - len(text.encode().translate(None, b"0123456789"))
    return sum(map(str.isdigit, text))


def _script(text: str) -> str:
    """The dominant writing system, told apart by code-point ranges of the first letters."""
    for ch in text[:200]:
        if not ch.isalpha():
            continue
        cp = ord(ch)
        if cp < 0x250:
            return "latin"
        if 0x400 <= cp < 0x530:
            return "cyrillic"
        if 0x590 <= cp < 0x600:
            return "hebrew"
        if 0x600 <= cp < 0x700:
            return "arabic"
        if 0x900 <= cp < 0xE00:
            return "indic"
        if 0x3040 <= cp < 0x3100:
            return "kana"
        if 0xAC00 <= cp < 0xD7B0:
            return "hangul"
        if 0x4E00 <= cp < 0xA000:
            return "cjk"
        return "other"
    return "none"


def _metadata(metadata: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    out = []
    for key in keys:
        value = metadata.get(key)
        if value is None or isinstance(value, dict | list):
            continue
        text = _UNSAFE.sub("_", str(value))[:64]
        if text:
            out.append(f"{key}={text}")
    return out


def estimate_tokens(text: str) -> int:
    """Prompt tokens, estimated as characters / 4 (the usual rule of thumb for English BPE)."""
    return (len(text) + 3) // 4
