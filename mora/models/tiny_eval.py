"""Tiny random-weight stand-ins for the evaluation models (DINOv2, CLIP, X-CLIP, BERT, the LAION
aesthetic head), built offline from configs like the round's tiny models.

They test the metrics' plumbing (shapes, loading, caching), not their values: random weights score
nothing meaningful. The aesthetic heads are saved as plain ``.pth`` state dicts, the form LAION ships:
the linear head VBench reads, and the improved MLP (the ``eval.aesthetic_predictor: mlp`` option).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mora.models.tiny_vocab import canonical
from mora.prompts.synthesizer import corpus

SIDE = 32  # every tiny image encoder reads 32x32 frames


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    tok = canonical(CLIPTokenizer().train_new_from_iterator(corpus(), vocab_size=500), corpus())
    tok.model_max_length = 77
    return tok


def _clip_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE})


def build_dinov2(out: Path) -> None:
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                             image_size=SIDE, patch_size=8)).save_pretrained(out)
    BitImageProcessor(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(out)


def _clip_text(tok) -> dict:
    """The tiny text tower CLIP and X-CLIP share."""
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)


def _clip_vision(**more) -> dict:
    """The tiny vision tower CLIP and X-CLIP share; X-CLIP adds its frame settings."""
    return dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=SIDE,
                patch_size=8, **more)


def build_clip(out: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tok = _clip_tokenizer()
    config = CLIPConfig(text_config=_clip_text(tok), vision_config=_clip_vision(), projection_dim=32)
    CLIPModel(config).save_pretrained(out)
    CLIPProcessor(image_processor=_clip_image_processor(), tokenizer=tok).save_pretrained(out)


def build_aesthetic_head(out: Path, features: int = 32) -> None:
    """VBench's LAION head layout (one Linear(features, 1); the real one reads ViT-L/14's 768)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(torch.nn.Linear(features, 1).state_dict(), out / "sa_0_4_vit_l_14_linear.pth")


def build_aesthetic_mlp(out: Path, features: int = 32) -> None:
    """The improved LAION predictor's layout (Linear 1024-128-64-16-1 with dropouts) on ``features`` inputs."""
    layers = torch.nn.Sequential(torch.nn.Linear(features, 64), torch.nn.Dropout(0.2), torch.nn.Linear(64, 16),
                                 torch.nn.Dropout(0.2), torch.nn.Linear(16, 8), torch.nn.Dropout(0.1),
                                 torch.nn.Linear(8, 4), torch.nn.Linear(4, 1))
    out.mkdir(parents=True, exist_ok=True)
    torch.save({f"layers.{k}": v for k, v in layers.state_dict().items()}, out / "aesthetic-model.pth")


def build_xclip(out: Path) -> None:
    from transformers import XCLIPConfig, XCLIPModel, XCLIPProcessor

    tok = _clip_tokenizer()
    config = XCLIPConfig(
        text_config=_clip_text(tok),
        vision_config=_clip_vision(num_frames=8, mit_hidden_size=32, mit_intermediate_size=37,
                                   mit_num_hidden_layers=1, mit_num_attention_heads=4),
        projection_dim=32, prompt_layers=1, prompt_attention_heads=4, prompt_projection_dropout=0.0,
        prompt_num_attention_heads=4)
    XCLIPModel(config).save_pretrained(out)
    XCLIPProcessor(image_processor=_clip_image_processor(), tokenizer=tok).save_pretrained(out)


def build_bert(out: Path) -> None:
    from transformers import BertConfig, BertModel

    tok = _bert_tokenizer()
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=37, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
              ).save_pretrained(out)
    tok.save_pretrained(out)


def _bert_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = raw.token_to_id("[CLS]"), raw.token_to_id("[SEP]")
    raw.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return canonical(BertTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]", model_max_length=128), corpus())


EVAL_BUILDERS = {
    "dinov2": build_dinov2,
    "clip": build_clip,
    "aesthetic-head": build_aesthetic_head,
    "aesthetic-head-mlp": build_aesthetic_mlp,
    "xclip": build_xclip,
    "bert": build_bert,
}
