"""Closing the loop: saved corrections become training data, retrain the student, and rounds are compared.

- `export`: the annotation store as training examples and reranker pairs;
- `round_folder`: the rounds folder's layout, the pointer to the serving round, and its lock;
- `jobs`: a retrain job's lifecycle, status, cancel and background process;
- `retrain`: the training step of one round (teacher examples + corrections -> a new student);
- `rounds`: each round's answers on held-out questions, side by side.
"""
