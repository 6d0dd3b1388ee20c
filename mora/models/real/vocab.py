"""Tokenizers of the real vocabulary sizes, built offline.

The published vocabularies cannot be downloaded here, so each tokenizer has the real algorithm (byte-level
BPE, CLIP's BPE with word ends, SentencePiece Unigram, WordPiece), the real size, and the real special
tokens at their real ids (the model configs point at those ids: image and video placeholders, eos, pad).
Its ordinary pieces are learned from the project's prompt corpus; the rest of the vocabulary is filled with
pieces made of non-ASCII bytes that English text never produces. Prompts therefore split into more pieces
than with the real vocabulary (text token counts are upper bounds); image and video token counts come from
the processors and are exact.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

from mora.models.tiny_vocab import canonical
from mora.prompts.synthesizer import corpus


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in its vocabulary order (printable bytes first):
    the base of byte-level BPE, ids 0-255 in Qwen2's and CLIP's vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


def _high_bytes() -> list[str]:
    """The stand-ins of bytes 0x80-0xFF, which ASCII text never produces."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    char = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(rest)}
    return [char[b] for b in range(0x80, 0x100)]


def _fillers(alphabet: list[str], suffix: str = "") -> Iterator[tuple[str, str]]:
    """Merges (left, right) over ``alphabet`` only, longer and longer, each making a new token; with a
    word-end ``suffix`` every merge is made with and without it."""
    level = alphabet
    while True:
        made = []
        for left, right in itertools.product(level, alphabet):
            made.append(left + right)
            yield left, right
            if suffix:
                yield left, right + suffix
        level = made


def _bpe(size: int, alphabet: list[str], learned: list, suffix: str = "") -> tuple[dict, list]:
    """A BPE vocabulary of exactly ``size`` entries: the alphabet, the learned merges, then fillers."""
    vocab = {t: i for i, t in enumerate(alphabet)}
    merges = []

    def add(left: str, right: str) -> None:
        token = left + right
        if left in vocab and right in vocab and token not in vocab:
            vocab[token] = len(vocab)
            merges.append([left, right])

    for left, right in learned:
        if len(vocab) >= size:
            break
        add(left, right)
    high = _high_bytes()
    for left, right in _fillers(high, suffix):
        if len(vocab) >= size:
            break
        add(left, right)
    return vocab, merges


def _with_vocab(tok, data: dict, vocab, merges, added: list[tuple[int, str]], decoder: dict | None = None):
    """``tok`` with this vocabulary, these added tokens at these ids, and its post-processor pointing at them."""
    from tokenizers import Tokenizer

    data["model"]["vocab"] = vocab
    if merges is not None:
        data["model"]["merges"] = merges
    data["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for i, t in added]
    ids = {t: i for i, t in added}
    post = data.get("post_processor") or {}
    for key in ("cls", "sep"):  # RobertaProcessing / BertProcessing
        if key in post:
            post[key][1] = ids[post[key][0]]
    for token, entry in (post.get("special_tokens") or {}).items():  # TemplateProcessing
        entry["ids"] = [ids[token]]
    if decoder is not None:
        data["decoder"] = decoder
    tok._tokenizer = Tokenizer.from_str(json.dumps(data))
    return tok


QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2.5's and Qwen2-VL's added tokens, ids 151643.. in this order (their tokenizer_config.json)
QWEN25_SPECIALS = QWEN2_SPECIALS + [
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
    "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>"]
QWEN_BPE_SIZE = 151_643  # byte-level BPE pieces before the added tokens (Qwen2 tokenizer.json)


def qwen_tokenizer(specials: list[str], chat_template: str):
    """Qwen2's byte-level BPE: 151,643 pieces, then ``specials`` from id 151,643 on."""
    from transformers import Qwen2Tokenizer

    trained = canonical(Qwen2Tokenizer().train_new_from_iterator(corpus(), vocab_size=60_000), corpus())
    data = json.loads(trained.backend_tokenizer.to_str())
    vocab, merges = _bpe(QWEN_BPE_SIZE, _byte_chars(), data["model"]["merges"])
    tok = _with_vocab(trained, data, vocab, merges, [(QWEN_BPE_SIZE + i, t) for i, t in enumerate(specials)])
    tok.chat_template = chat_template
    tok.eos_token, tok.pad_token, tok.unk_token = "<|im_end|>", "<|endoftext|>", None
    tok.model_max_length = 131_072
    return tok


CLIP_SIZE = 49_408  # CLIP's vocabulary (openai/clip-vit-large-patch14 tokenizer.json), two specials last


def clip_tokenizer(pad: str = "<|endoftext|>"):
    """CLIP's BPE with word ends: 256 bytes, the same with ``</w>``, merges, then start and end of text."""
    from transformers import CLIPTokenizer

    trained = canonical(CLIPTokenizer().train_new_from_iterator(corpus(), vocab_size=30_000), corpus())
    data = json.loads(trained.backend_tokenizer.to_str())
    alphabet = _byte_chars() + [c + "</w>" for c in _byte_chars()]
    vocab, merges = _bpe(CLIP_SIZE - 2, alphabet, data["model"]["merges"], suffix="</w>")
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = CLIP_SIZE - 2, CLIP_SIZE - 1
    tok = _with_vocab(trained, data, vocab, merges, [(CLIP_SIZE - 2, "<|startoftext|>"),
                                                     (CLIP_SIZE - 1, "<|endoftext|>")],
                      decoder={"type": "BPEDecoder", "suffix": "</w>"})
    tok.model_max_length = 77
    tok.pad_token = pad  # SDXL's tokenizer_2 pads with "!"
    return tok


def sentencepiece_tokenizer(pieces: int, extra_ids: int, max_length: int):
    """T5 / UMT5 SentencePiece Unigram: <pad> </s> <unk>, ``pieces`` in all, then ``extra_ids`` sentinels."""
    from transformers import T5Tokenizer

    trained = canonical(T5Tokenizer(extra_ids=0).train_new_from_iterator(corpus(), vocab_size=20_000), corpus())
    data = json.loads(trained.backend_tokenizer.to_str())
    vocab = list(data["model"]["vocab"])
    seen = {p for p, _ in vocab}
    high = [chr(c) for c in range(0x4E00, 0x9FFF)]  # CJK ideographs: pieces English text never uses
    for piece in itertools.chain(high, ("".join(p) for p in itertools.product(high, high))):
        if len(vocab) >= pieces:
            break
        if piece not in seen:
            vocab.append([piece, -99.0])
    # sentinels count down from the top: <extra_id_0> has the highest id (T5's convention)
    sentinels = [(pieces + i, f"<extra_id_{extra_ids - 1 - i}>") for i in range(extra_ids)]
    specials = [(i, p) for i, (p, _) in enumerate(vocab[:3])]
    tok = _with_vocab(trained, data, vocab, None, specials + sentinels)
    tok.model_max_length = max_length
    return tok


BERT_SIZE = 30_522  # bert-base-uncased vocab.txt


def bert_tokenizer():
    """BERT's WordPiece: [PAD], [unused0-98], [UNK] [CLS] [SEP] [MASK] at ids 0 and 100-103, 30,522 in all."""
    from mora.models.tiny_eval import _bert_tokenizer

    trained = _bert_tokenizer(vocab_size=20_000)
    data = json.loads(trained.backend_tokenizer.to_str())
    specials = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens = dict.fromkeys(specials + [t for t in data["model"]["vocab"] if t not in specials])
    high = [chr(c) for c in range(0x4E00, 0x9FFF)]
    for piece in itertools.chain(high, ("##" + c for c in high), ("".join(p) for p in itertools.product(high, high))):
        if len(tokens) >= BERT_SIZE:
            break
        tokens.setdefault(piece)
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = _with_vocab(trained, data, vocab, None, [(vocab[t], t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                            "[MASK]")])
    tok.model_max_length = 512
    return tok
