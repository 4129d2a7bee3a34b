"""The knowledge reranker box: from BM25's candidates for the question, the passages a rationale needs.

- `encoder`: cross-encoder and MaxSim rerankers, `load_reranker` for any saved kind, `rank_by_scores`;
- `dense`: the shipped reranker (a LoRA question encoder over cached passage vectors, blended with BM25);
- `maxsim`: the late-interaction scorer;
- `training`: the KL objective to BM25's distribution given the rationale, for the encoder kinds;
- `evaluation`: how often the rationale's passage is found from the question alone (top-1, top-3).
"""
