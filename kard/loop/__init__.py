"""Closing the loop: saved corrections become training data, retrain the student, and rounds are compared.

- `export`: the annotation store as training examples and reranker pairs;
- `retrain`: one retraining round from an export;
- `rounds`: each round's answers on held-out questions, side by side.
"""
