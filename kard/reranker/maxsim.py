"""Late-interaction (ColBERT-style MaxSim) scorer, the paper's reranker architecture.

Question and passage are encoded apart; each token is projected to 128 dimensions and normalised;
score = sum over question tokens of the best cosine with any passage token. Scores lie in
[-Lq, Lq] for Lq question tokens, so the KL temperatures of kard.reranker.training fit them as they
fit a cross-encoder's logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

HEAD_FILE = "maxsim_head.pt"
DIM = 128  # ColBERT's token embedding size


class MaxSimScorer(nn.Module):
    def __init__(self, encoder, dim: int = DIM):
        super().__init__()
        self.encoder = encoder
        self.project = nn.Linear(encoder.config.hidden_size, dim, bias=False)

    @classmethod
    def from_pretrained(cls, source: str) -> "MaxSimScorer":
        from transformers import AutoModel

        scorer = cls(AutoModel.from_pretrained(source))
        head = Path(source) / HEAD_FILE
        if head.is_file():
            scorer.project.load_state_dict(torch.load(head, map_location="cpu", weights_only=True))
        return scorer

    def save(self, directory: Path) -> None:
        self.encoder.save_pretrained(directory)
        torch.save(self.project.state_dict(), Path(directory) / HEAD_FILE)

    def embed(self, batch) -> torch.Tensor:
        states = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        vectors = nn.functional.normalize(self.project(states), dim=-1)
        return vectors * batch["attention_mask"].unsqueeze(-1)

    def score(self, tokenizer, queries: list[str], texts: list[str], max_length: int, device: str) -> torch.Tensor:
        q = tokenizer(queries, truncation=True, max_length=max_length, padding=True, return_tensors="pt").to(device)
        d = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt").to(device)
        similarity = torch.einsum("bqh,bdh->bqd", self.embed(q), self.embed(d))
        similarity = similarity.masked_fill(d["attention_mask"].unsqueeze(1) == 0, -1e4)
        best = similarity.max(dim=-1).values * q["attention_mask"]
        return best.sum(dim=-1)
