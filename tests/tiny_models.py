"""Tiny random students built in-test (no network, about a second): a Llama-style decoder and a T5.

Both share a byte-level BPE tokenizer trained here on a few sentences, so any text can be encoded.
`save_tiny_decoder(folder, chat_template=True)` / `save_tiny_t5(folder)` write folders that
`Student.load` reads like any checkpoint.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Answer the multiple-choice question. Use the knowledge if it helps, explain your reasoning.",
    "Question: Which gas do plants absorb? A. oxygen B. carbon dioxide C. nitrogen D. helium",
    "Knowledge: Plants absorb carbon dioxide and release oxygen during photosynthesis.",
    "Explanation: The answer is B because plants take in carbon dioxide. Answer: B",
]


def tiny_tokenizer(eos: str = "</s>", bos: str | None = "<s>", append_eos: bool = False):
    """Byte-level BPE over CORPUS; `append_eos` adds EOS after every text, as T5 tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(CORPUS * 4, trainer)
    if append_eos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", special_tokens=[(eos, backend.token_to_id(eos))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token=eos, unk_token="<unk>", bos_token=bos
    )


def save_tiny_decoder(folder: Path, chat_template: bool = True, max_positions: int = 256) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(eos="<|im_end|>" if chat_template else "</s>")
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_t5(folder: Path) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = tiny_tokenizer(eos="</s>", bos=None, append_eos=True)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
